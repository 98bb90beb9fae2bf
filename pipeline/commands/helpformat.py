"""One ``--help`` style for every command: defaults shown where there is one worth showing."""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, [], "", argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)
