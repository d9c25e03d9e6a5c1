"""reid-pipeline: the application (sources, detectors, encoder, tracklets, matching, store, CLI)."""

__version__ = "0.1.0"
