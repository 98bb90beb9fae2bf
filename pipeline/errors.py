"""User errors and how every command reports them: one line on stderr, exit code 2.

Tracebacks are for bugs: ``--debug`` (or ``WBCZOO_DEBUG=1``) shows them for user errors too.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Sequence

DEBUG_ENV = "WBCZOO_DEBUG"
USAGE_ERROR = 2  # as argparse exits on a malformed command line

Main = Callable[[Sequence[str] | None], int]


class UserError(Exception):
    """Bad input (an option, a file, a folder): its message names it and the fix."""


class UnknownNameError(UserError, KeyError):
    """A name the project does not know (a member, recipe, recipe field, adapter, augmentation).

    A ``KeyError`` as lookups raise, but shown without ``KeyError``'s quotes."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# Files and folders given by the user: missing, unreadable, unwritable (a read-only --out).
USER_ERRORS = (UserError, OSError)


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"show the traceback of an error in the input too (or set {DEBUG_ENV}=1)",
    )


def one_line(message: object) -> str:
    return " ".join(str(message).split())


def user_errors(main: Main) -> Main:
    """Wrap a command's ``main``: a user error (or ``SystemExit`` with a message) becomes
    ``error: <message>`` on stderr and exit code 2."""

    @functools.wraps(main)
    def run(argv: Sequence[str] | None = None) -> int:
        words = sys.argv[1:] if argv is None else list(argv)
        debug = "--debug" in words or os.environ.get(DEBUG_ENV, "") not in ("", "0")
        try:
            return main(argv)
        except SystemExit as exc:  # argparse's own exits carry a number, not a message
            if debug or not isinstance(exc.code, str):
                raise
            message = exc.code
        except USER_ERRORS as exc:
            if debug:
                raise
            message = str(exc)
        print(f"error: {one_line(message)}", file=sys.stderr)
        return USAGE_ERROR

    return run
