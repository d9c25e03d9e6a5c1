"""Multi-object trackers: Kalman filter, track state machine, cost functions, assignment."""
