"""``python -m pipeline.audit``: its code is pipeline/commands/audit.py."""

import sys

from pipeline.commands.audit import main

if __name__ == "__main__":
    sys.exit(main())
