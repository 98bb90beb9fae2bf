"""``python -m pipeline.calibrate``: its code is pipeline/commands/calibrate.py."""

import sys

from pipeline.commands.calibrate import main

if __name__ == "__main__":
    sys.exit(main())
