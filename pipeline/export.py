"""``python -m pipeline.export``: its code is pipeline/commands/export.py."""

import sys

from pipeline.commands.export import main

if __name__ == "__main__":
    sys.exit(main())
