"""``python -m pipeline.tune``: its code is pipeline/commands/tune.py."""

import sys

from pipeline.commands.tune import main

if __name__ == "__main__":
    sys.exit(main())
