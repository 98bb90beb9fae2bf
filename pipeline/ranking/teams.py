"""Competition teams: tokens issued by the organiser, and the audit log of submissions.

A token is shown once, when the organiser adds the team; ``OUT/competition/teams.json`` keeps
only a salted PBKDF2 hash of it. Submitting, a team's history and its final selection all need
a ``Team``, which only ``authenticate`` makes. ``OUT/competition/audit.jsonl`` gets one line per
accepted submission and is only ever appended to.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UserError
from pipeline.io import read_json, write_json
from pipeline.ranking.upload import sanitise_name
from pipeline.runs.layout import Layout

ITERATIONS = 100_000  # PBKDF2-SHA256; tokens carry 192 random bits, this only slows a thief
TOKEN_BYTES = 24


class TokenError(UserError, ValueError):
    """An unknown team or a wrong token (one message for both: names are not probed)."""


@dataclass(frozen=True)
class Team:
    """A team that has shown its token."""

    name: str


def utc_stamp(seconds: float | None = None) -> str:
    """A time (default: now) in UTC, ISO 8601 to the second, as the competition's files say it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _hash(token: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", token.encode(), bytes.fromhex(salt), ITERATIONS).hex()


def registered(out: Path) -> dict[str, dict]:
    path = Layout(out).competition_teams
    return read_json(path)["teams"] if path.is_file() else {}


def add_team(out: Path, name: str) -> tuple[str, str]:
    """Register a team; return its folder name and its token, which is stored nowhere."""
    team = sanitise_name(name)
    teams = registered(out)
    if team.lower() in {t.lower() for t in teams}:
        raise UserError(f"team {team} is already registered (nothing changed)")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    salt = secrets.token_hex(16)
    teams[team] = {"salt": salt, "hash": _hash(token, salt), "created": utc_stamp()}
    write_json(Layout(out).competition_teams, {"teams": teams})
    return team, token


def authenticate(out: Path, name: str, token: str) -> Team:
    """The team whose token this is; a ``TokenError`` otherwise."""
    try:
        team = sanitise_name(name)
    except ValueError:
        team = ""
    entry = registered(out).get(team)
    # an unknown name costs the same hash as a known one: timing does not list the teams
    salt = entry["salt"] if entry else "00" * 16
    ok = hmac.compare_digest(_hash(token, salt), entry["hash"] if entry else "")
    if not (entry and ok):
        raise TokenError(
            "unknown team or wrong token: use the team name and token the organiser gave you"
        )
    return Team(team)


def audit(out: Path, record: dict) -> None:
    """Append one line to the audit log, flushed to disk before the submission counts."""
    path = Layout(out).competition_audit
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
