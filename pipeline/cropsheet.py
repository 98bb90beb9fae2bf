"""``python -m pipeline.cropsheet``: its code is pipeline/commands/cropsheet.py."""

import sys

from pipeline.commands.cropsheet import main

if __name__ == "__main__":
    sys.exit(main())
