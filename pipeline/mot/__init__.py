"""MOTChallenge data layer (MOT15/16/17/20); the public names live in :mod:`pipeline.motchallenge`."""
