"""``python -m pipeline.predict``: its code is pipeline/commands/predict.py."""

import sys

from pipeline.commands.predict import main

if __name__ == "__main__":
    sys.exit(main())
