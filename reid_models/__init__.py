"""Re-id networks, losses, samplers, MOT-derived datasets, training and re-id metrics."""
