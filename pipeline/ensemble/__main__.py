import sys

from pipeline.ensemble.cli import main

sys.exit(main())
