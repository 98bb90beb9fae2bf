"""The commands: what each is called and where its parser is built.

Each command keeps its module (``python -m pipeline.zoo`` and so on); the options they share,
with one meaning per flag name, live in :mod:`pipeline.commands.options`.
"""

from __future__ import annotations

import argparse
import importlib

# command -> the module whose build_parser() builds its parser
COMMANDS = {
    "pipeline.zoo": "pipeline.commands.zoo",
    "pipeline.tune": "pipeline.commands.tune",
    "pipeline.ensemble": "pipeline.commands.ensemble",
    "pipeline.leaderboard": "pipeline.commands.leaderboard",
    "pipeline.predict": "pipeline.commands.predict",
    "pipeline.explain": "pipeline.commands.explain",
    "pipeline.calibrate": "pipeline.commands.calibrate",
    "pipeline.export": "pipeline.commands.export",
    "pipeline.adapt": "pipeline.commands.adapt",
    "pipeline.pretrain": "pipeline.commands.pretrain",
    "pipeline.audit": "pipeline.commands.audit",
    "pipeline.reference": "pipeline.commands.reference",
    "pipeline.cropsheet": "pipeline.commands.cropsheet",
}


def build_parser(command: str) -> argparse.ArgumentParser:
    return importlib.import_module(COMMANDS[command]).build_parser()
