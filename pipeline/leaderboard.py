"""``python -m pipeline.leaderboard``: its code is pipeline/commands/leaderboard.py."""

import sys

from pipeline.commands.leaderboard import main

if __name__ == "__main__":
    sys.exit(main())
