"""The installed console commands: ``wbczoo COMMAND ...`` and ``wbczoo-board ...``.

``wbczoo zoo --all`` is ``python -m pipeline.zoo --all``: the command's module is run by name as
``__main__``, so the two spellings are one code path. Nothing here imports a command.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

from pipeline.commands import COMMANDS
from pipeline.ranking.limits import UPLOAD_MB

PREFIX = "pipeline."
USAGE = "usage: wbczoo COMMAND [options]   (wbczoo COMMAND --help: the command's options)"


def commands() -> list[str]:
    """The names ``wbczoo`` takes: each ``python -m pipeline.<name>`` command."""
    return [module.removeprefix(PREFIX) for module in COMMANDS]


def overview() -> str:
    lines = [USAGE, "", "Runs python -m pipeline.COMMAND. Commands:"]
    lines += [f"  {name}" for name in commands()]
    lines += ["", "The leaderboard app: wbczoo-board (streamlit run leaderboard/app.py)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``wbczoo COMMAND [options]``: run ``python -m pipeline.COMMAND [options]``."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(overview(), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in commands():
        print(
            f"error: unknown command {name!r}; one of: {', '.join(commands())} (wbczoo --help)",
            file=sys.stderr,
        )
        return 2
    sys.argv = [f"wbczoo {name}", *rest]
    runpy.run_module(PREFIX + name, run_name="__main__", alter_sys=True)
    return 0


def board_app() -> Path:
    """The app's entry script, a file inside ``pipeline`` (a wheel installs no ``leaderboard/``);
    found by path: nothing in ``pipeline`` imports the app."""
    return Path(__file__).resolve().parents[1] / "app" / "scripts" / "wbczoo_board.py"


def board_command(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(board_app()), *argv]


def board_environment() -> dict[str, str]:
    """Streamlit reads the repository's ``.streamlit/config.toml`` only when started from the
    checkout's root; from anywhere else the app (which saves uploads) would listen on every
    address and take 200 MB uploads. These defaults keep it on this machine and its uploads to
    the checker's limit; ``--server.address`` and ``--server.maxUploadSize`` still override."""
    env = dict(os.environ)
    env.setdefault("STREAMLIT_SERVER_ADDRESS", "127.0.0.1")
    env.setdefault("STREAMLIT_SERVER_MAX_UPLOAD_SIZE", str(UPLOAD_MB))
    env.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
    return env


def wait_for(command: list[str], env: dict[str, str]) -> int:
    """Run ``command`` to its end; Ctrl-C reaches it too and it stops on its own, where
    ``subprocess.call`` would kill it mid-shutdown."""
    with subprocess.Popen(command, env=env) as process:
        while True:
            try:
                return process.wait()
            except KeyboardInterrupt:
                continue


def board(argv: list[str] | None = None) -> int:
    """``wbczoo-board [streamlit options] [-- --out DIR]``: the app, as ``streamlit run
    leaderboard/app.py`` runs it in a checkout."""
    args = sys.argv[1:] if argv is None else argv
    return wait_for(board_command(args), board_environment())
