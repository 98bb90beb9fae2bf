"""``python -m pipeline.explain``: its code is pipeline/commands/explain.py."""

import sys

from pipeline.commands.explain import main

if __name__ == "__main__":
    sys.exit(main())
