"""Competition teams: tokens issued by the organiser, and the audit log of submissions.

A token is shown once, when the organiser adds the team; ``OUT/competition/teams.json`` keeps
only a salted PBKDF2 hash of it. Submitting, a team's history and its final selection all need
a ``Team``, which only ``authenticate`` makes. Team names are one team whatever their case,
Unicode form or separators (``Nova_Team``, ``Nova.Team``, ``nova team``), and never a name of
the competition's own files. ``OUT/competition/audit.jsonl`` gets one line per event (accepted
and rejected submissions, failed logins, new teams, settings, the reveal) and is only ever
appended to; like every file of the competition, it is readable by its owner only (0600).
Failed logins are limited per team name: 5 in 10 minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UserError
from pipeline.io import PRIVATE, read_json, write_json
from pipeline.names import NAME_MAX, BadName, quote
from pipeline.ranking.upload import sanitise_name
from pipeline.runs.layout import Layout

ITERATIONS = 100_000  # PBKDF2-SHA256; tokens carry 192 random bits, this only slows a thief
TOKEN_BYTES = 24
LOGIN_ATTEMPTS = 5  # failed logins per team name and window; more are refused unhashed
LOGIN_WINDOW = 600.0  # seconds
_SEPARATORS = re.compile(r"[\s._-]+")


class TokenError(UserError, ValueError):
    """An unknown team or a wrong token (one message for both: names are not probed)."""


class LoginsLimited(TokenError):
    """Too many failed logins for a team name of late (for known and unknown names alike)."""


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


def identity(name: str) -> str:
    """What makes two team names one team: Unicode compatibility form (NFKC), case, and
    spaces, ``_``, ``.`` and ``-`` all alike."""
    return _SEPARATORS.sub("-", unicodedata.normalize("NFKC", name).casefold())


def team_name(out: Path, name: str) -> str:
    """``name`` as a team's folder name (``sanitise_name`` of its NFKC form); a ``BadName``
    for a name of the competition's own files."""
    folder = sanitise_name(unicodedata.normalize("NFKC", name))
    reserved = {identity(p.name) for p in Layout(out).competition_files()}
    if name.strip().startswith(".") or identity(folder) in reserved:
        raise BadName(
            f"team name {quote(name)} is reserved for the competition's own files: choose another"
        )
    return folder


def find(out: Path, teams: dict[str, dict], name: str) -> str | None:
    """The registered team that ``name`` spells: the same folder name, else the same
    ``identity``."""
    try:
        folder = team_name(out, name)
    except ValueError:
        return None
    if folder in teams:
        return folder
    return next((t for t in teams if identity(t) == identity(folder)), None)


def add_team(out: Path, name: str) -> tuple[str, str]:
    """Register a team; return its folder name and its token, which is stored nowhere."""
    team = team_name(out, name)
    teams = registered(out)
    known = find(out, teams, team)
    if known:
        raise UserError(f"team {team} is already registered as {known} (nothing changed)")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    salt = secrets.token_hex(16)
    teams[team] = {"salt": salt, "hash": _hash(token, salt), "created": utc_stamp()}
    write_json(Layout(out).competition_teams, {"teams": teams}, PRIVATE)
    audit(out, "team_added", team=team)
    return team, token


def authenticate(out: Path, name: str, token: str, now: float | None = None) -> Team:
    """The team whose token this is; a ``TokenError`` otherwise, logged. After
    ``LOGIN_ATTEMPTS`` failures in ``LOGIN_WINDOW`` seconds for a name, ``LoginsLimited``
    (not logged: a flood of attempts must not flood the log)."""
    now = time.time() if now is None else now
    who = identity(name)[:NAME_MAX]
    if failed_logins(out, who, now - LOGIN_WINDOW) >= LOGIN_ATTEMPTS:
        raise LoginsLimited(
            f"too many failed logins for {quote(name)} in the last {LOGIN_WINDOW / 60:.0f} "
            "minutes: wait, then use the team name and token the organiser gave you"
        )
    teams = registered(out)
    team = find(out, teams, name)
    entry = teams.get(team) if team else None
    # an unknown name costs the same hash as a known one: timing does not list the teams
    salt = entry["salt"] if entry else "00" * 16
    ok = hmac.compare_digest(_hash(token, salt), entry["hash"] if entry else "")
    if not (entry and ok):
        audit(out, "login_failed", now, team=who)
        raise TokenError(
            "unknown team or wrong token: use the team name and token the organiser gave you"
        )
    return Team(team)


def failed_logins(out: Path, who: str, since: float) -> int:
    """How many logins as ``who`` (an ``identity``) failed since ``since``."""
    path = Layout(out).competition_audit
    if not path.is_file():
        return 0
    start = utc_stamp(since)  # ISO times in UTC sort as strings
    with open(path, encoding="utf-8") as f:
        events = [json.loads(line) for line in f if '"login_failed"' in line]
    return sum(e.get("team") == who and e.get("time", "") >= start for e in events)


def audit(out: Path, event: str, now: float | None = None, **fields: object) -> None:
    """Append one line to the audit log (``event``, its UTC time, ``fields``), flushed to disk
    before the submission counts."""
    path = Layout(out).competition_audit
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE)
    os.fchmod(fd, PRIVATE)  # a log an older version made readable to all
    record = {"event": event, "time": utc_stamp(now), **fields}
    with open(fd, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
