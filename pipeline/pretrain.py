"""``python -m pipeline.pretrain``: its code is pipeline/commands/pretrain.py."""

import sys

from pipeline.commands.pretrain import main

if __name__ == "__main__":
    sys.exit(main())
