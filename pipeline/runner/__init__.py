"""The multi-camera run: the frame loop (loop.py), its component builders (components.py), the
tracklet -> identity -> store step (identity.py), the ROI filter and the per-stage timer."""
