#!/usr/bin/env python
"""Build virtual multi-camera data from one MOTChallenge sequence.

Same as ``reid-pipeline virtual-cameras``; e.g.::

    .venv/bin/python tools/make_virtual_cameras.py ../shared/data/MOT15/train/PETS09-S2L1 \\
        --out runs/virtual/pets2 --layout two-regions --gap 0.1
"""

from __future__ import annotations

import sys


from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["virtual-cameras", *sys.argv[1:]]))
