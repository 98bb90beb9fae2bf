"""``python -m pipeline.ensemble``: its code is pipeline/commands/ensemble.py."""

import sys

from pipeline.commands.ensemble import main

if __name__ == "__main__":
    sys.exit(main())
