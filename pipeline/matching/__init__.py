"""Cross-camera matching: the gallery + Hungarian matcher (matcher.py), its config (config.py) and the
label-free threshold calibration (calibration.py)."""
