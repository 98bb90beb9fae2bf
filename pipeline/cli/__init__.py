"""The commands: what each is called and where its parser is built.

Each command keeps its module (``python -m pipeline.zoo`` and so on); the options they share,
with one meaning per flag name, live in :mod:`pipeline.cli.options`.
"""

from __future__ import annotations

import argparse
import importlib

# command -> the module whose build_parser() builds its parser
COMMANDS = {
    "pipeline.zoo": "pipeline.zoo",
    "pipeline.tune": "pipeline.tune",
    "pipeline.ensemble": "pipeline.ensemble.cli",
    "pipeline.leaderboard": "pipeline.leaderboard.__main__",
    "pipeline.predict": "pipeline.predict",
    "pipeline.explain": "pipeline.explain.__main__",
    "pipeline.calibrate": "pipeline.calibrate",
    "pipeline.export": "pipeline.export",
    "pipeline.adapt": "pipeline.adapt.__main__",
    "pipeline.pretrain": "pipeline.pretrain.__main__",
    "pipeline.audit": "pipeline.audit.__main__",
    "pipeline.reference": "pipeline.reference.__main__",
    "pipeline.data.cropsheet": "pipeline.data.cropsheet",
}


def build_parser(command: str) -> argparse.ArgumentParser:
    return importlib.import_module(COMMANDS[command]).build_parser()
