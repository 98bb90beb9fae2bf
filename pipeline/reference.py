"""``python -m pipeline.reference``: its code is pipeline/commands/reference.py."""

import sys

from pipeline.commands.reference import main

if __name__ == "__main__":
    sys.exit(main())
