"""One module per ``reid-pipeline`` subcommand.

Each module defines ``HELP: str``, ``add_arguments(parser)`` and
``run(args) -> int``. Modules import heavy libraries (torch, cv2,
ultralytics) inside ``run`` so that ``reid-pipeline --help`` stays fast.
"""
