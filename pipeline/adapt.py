"""``python -m pipeline.adapt``: its code is pipeline/commands/adapt.py."""

import sys

from pipeline.commands.adapt import main

if __name__ == "__main__":
    sys.exit(main())
