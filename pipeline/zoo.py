"""``python -m pipeline.zoo``: its code is pipeline/commands/zoo.py."""

import sys

from pipeline.commands.zoo import main

if __name__ == "__main__":
    sys.exit(main())
