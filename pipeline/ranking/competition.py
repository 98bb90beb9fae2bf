"""Competition mode: uploads ranked on a public part of a test set, the rest kept private.

As on Kaggle: the organiser turns a dataset's test split into a bundle of images under opaque
random ids (``pipeline.ranking.bundle``) and keeps, server-side in
``OUT/competition/<dataset>/key.json``, which id is which image with which label, and the secret
salt that divides the ids, stratified, into a public and a private part. A submission names the
opaque ids; it is scored on both parts, but only its public score is shown until the organiser
reveals the private ones. Teams hold tokens (``pipeline.ranking.teams``) and have a daily
submission limit, a history, and one submission selected for the final ranking. Submissions
close at the deadline, if there is one, and for good at the reveal, which records each team's
final submission.

Everything lives under ``OUT/competition/``: ``settings.json`` (its presence turns the mode on),
``teams.json``, ``audit.jsonl``, and per dataset ``key.json``, ``final.json`` (from the reveal)
and ``<team>/<id>.csv`` with ``<id>.json`` (the scores) and ``selected.json``. None of it is
ever packed into a reference zoo. Zoo members and ensembles are not part of it: they keep their
full test scores.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import UserError, one_line
from pipeline.evaluation.answers import ids_fingerprint
from pipeline.evaluation.scoring import AnswerKey, score
from pipeline.io import PRIVATE, read_json, write_json
from pipeline.ranking.cached_scores import SUMMARY
from pipeline.ranking.ranks import shared_rank
from pipeline.ranking.teams import Team, audit, utc_stamp
from pipeline.ranking.upload import Upload, check_upload, sanitise_name
from pipeline.runs.layout import Layout
from pipeline.runs.manifest import flocked
from pipeline.runs.submissions import write_submission

SET = "test"  # the set competitions are held on


class ContestError(UserError, ValueError):
    """A competition file (settings, key) that cannot be read."""


class SubmissionRefused(UserError, ValueError):
    """A valid submission that is not taken: over the daily limit, past the deadline, revealed."""


@dataclass(frozen=True)
class Settings:
    """The organiser's choices, in ``OUT/competition/settings.json``."""

    public_share: float = 0.3  # of each class's test images
    daily_limit: int = 5  # submissions per team and UTC day
    deadline: str | None = None  # UTC, ISO 8601: no submission after it
    revealed: bool = False  # private scores shown; submissions closed for good

    def __post_init__(self) -> None:
        if not 0 < self.public_share < 1:
            raise ValueError(f"public_share must lie in (0, 1), got {self.public_share}")
        if self.daily_limit < 1:
            raise ValueError(f"daily_limit must be at least 1, got {self.daily_limit}")
        if self.deadline is not None:  # one spelling on disk, whatever zone it was given in
            object.__setattr__(self, "deadline", utc_stamp(utc_time(self.deadline)))


def utc_time(text: str) -> float:
    """Seconds since the epoch of an ISO 8601 time that names its zone (``2027-01-31T23:59Z``)."""
    try:
        when = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(
            f"deadline {text!r} is not an ISO 8601 time: write it as 2027-01-31T23:59Z (UTC)"
        ) from None
    if when.tzinfo is None:  # the host's local time would differ from the server's
        raise ValueError(f"deadline {text!r} has no time zone: end it with Z (UTC)")
    return when.timestamp()


def closed(settings: Settings, now: float) -> str | None:
    """Why no submission is taken at ``now``; None while submissions are open."""
    if settings.revealed:
        return "the competition is over: the private scores are revealed"
    if settings.deadline is not None and now > utc_time(settings.deadline):
        return f"the competition closed at its deadline, {settings.deadline}"
    return None


def load_settings(out: Path) -> Settings | None:
    """The settings, or None when competition mode is off (no settings file)."""
    path = Layout(out).competition_settings
    if not path.is_file():
        return None
    data = read_json(path)
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) {unknown}; known: {sorted(known)}")
    return Settings(**data)


def running(out: Path) -> bool:
    """Whether competition mode is on and not yet revealed; a damaged settings file counts: it
    cannot say the competition is over."""
    try:
        settings = load_settings(out)
    except (OSError, ValueError):
        return True
    return settings is not None and not settings.revealed


def save_settings(out: Path, settings: Settings) -> None:
    write_json(Layout(out).competition_settings, dataclasses.asdict(settings), PRIVATE)
    audit(out, "settings", **dataclasses.asdict(settings))


@dataclass(frozen=True)
class ContestKey:
    """A dataset's competition, as only the server knows it (``key.json``)."""

    salt: str  # secret: who knows it knows the division
    vocabulary: tuple[str, ...]
    images: dict[str, tuple[str, str]]  # opaque id -> (the answer key's id, label)
    source: dict  # where the answer key comes from (meta.json's form)
    # pixel fingerprints of the images (``pipeline.ranking.fingerprints``): what the app keeps
    # the truth of, on any set; empty in keys made before they were recorded
    fingerprints: tuple[str, ...] = ()

    @property
    def answers(self) -> AnswerKey:
        """The answer key submissions are checked and scored against: opaque id -> label."""
        labels = {opaque: label for opaque, (_, label) in self.images.items()}
        return AnswerKey(labels, self.vocabulary)

    def divide(self, share: float) -> tuple[frozenset[str], frozenset[str]]:
        return divide(self.answers.labels, share, self.salt)

    def public_set(self, share: float) -> str:
        """The fingerprint of the public part: the identity of the public board."""
        return ids_fingerprint(self.divide(share)[0])


def save_key(out: Path, dataset: str, contest: ContestKey) -> None:
    data = {"format": 1} | dataclasses.asdict(contest)
    write_json(Layout(out).competition_key(dataset), data, PRIVATE)


def load_key(out: Path, dataset: str) -> ContestKey | None:
    """The dataset's competition key, or None when the organiser has not made its bundle."""
    path = Layout(out).competition_key(dataset)
    if not path.is_file():
        return None
    try:
        data = read_json(path)
        images = {o: (i, lab) for o, (i, lab) in data["images"].items()}
        prints = tuple(data.get("fingerprints", ()))
        return ContestKey(data["salt"], tuple(data["vocabulary"]), images, data["source"], prints)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ContestError(f"{path}: not a competition key ({exc})") from exc


def divide(key: dict[str, str], share: float, salt: str) -> tuple[frozenset[str], frozenset[str]]:
    """(public ids, private ids) of a test set: for each class, the ``round(share * n)`` ids
    first in the order of ``sha256(salt + id)``. Deterministic given the secret ``salt``,
    unpredictable without it."""

    def draw(image_id: str) -> str:
        return hashlib.sha256(f"{salt}\0{image_id}".encode()).hexdigest()

    public: set[str] = set()
    for label in sorted(set(key.values())):
        ids = sorted((i for i, lab in key.items() if lab == label), key=draw)
        public.update(ids[: round(share * len(ids))])
    return frozenset(public), frozenset(key) - public


@dataclass(frozen=True)
class Record:
    """One competition submission and its stored scores."""

    id: str
    team: str
    dataset: str
    created: str  # UTC, ISO 8601
    file: str  # the uploaded file's name
    public: dict
    private: dict
    public_set: str  # fingerprint of the public ids it was scored on

    @property
    def day(self) -> str:
        return self.created[:10]


def team_folder(out: Path, dataset: str, team: str) -> Path:
    return Layout(out).competition_team(dataset, sanitise_name(team))


def datasets(out: Path) -> list[str]:
    """The datasets that have a competition (a key)."""
    layout = Layout(out)
    names = (p.name for p in layout.competition.glob("*") if p.is_dir())
    return sorted(n for n in names if layout.competition_key(n).is_file())


def teams_of(out: Path, dataset: str) -> list[str]:
    """The teams that have a folder in ``dataset``'s competition."""
    return sorted(p.name for p in Layout(out).contest(dataset).glob("*") if p.is_dir())


def history(out: Path, dataset: str, team: str) -> list[Record]:
    """A team's submissions, oldest first."""
    folder = team_folder(out, dataset, team)
    selection = Layout(out).competition_selection(dataset, folder.name).name
    return [_record(p) for p in sorted(folder.glob("*.json")) if p.name != selection]


def check(data: bytes, contest: ContestKey, filename: str) -> Upload:
    """A competition submission checked against the opaque ids (``SubmissionError`` if not)."""
    return check_upload(data, contest.answers, filename)


def submit(
    out: Path,
    dataset: str,
    team: Team,
    data: bytes,
    filename: str,
    contest: ContestKey,
    now: float | None = None,
) -> Record:
    """Check an authenticated team's file, score it on the public and the private part, store
    it and log it (``audit.jsonl``).

    A file that breaks the format or names other ids is a ``SubmissionError``; over the daily
    limit, past the deadline or after the reveal it is ``SubmissionRefused``; either way
    nothing is written. The settings are read here, not taken from the caller: a page opened
    before the reveal must not submit after it. Counting and writing hold the competition's
    lock, so the limit holds across the app's sessions and other processes.
    """
    now = time.time() if now is None else now
    created = utc_stamp(now)
    sha256 = hashlib.sha256(data).hexdigest()
    seen = {"team": team.name, "dataset": dataset, "file": filename, "sha256": sha256}
    try:
        upload = check(data, contest, filename)
    except ValueError as exc:
        audit(out, "rejected", now, **seen, reason=one_line(exc))
        raise
    with flocked(Layout(out).competition_lock):
        settings = load_settings(out)
        past = history(out, dataset, team.name)
        reason = refusal(team, settings, past, now)
        if reason:
            audit(out, "rejected", now, **seen, reason=reason)
            raise SubmissionRefused(f"{reason} (nothing was saved)")
        public, private = contest.divide(settings.public_share)
        sub = upload.submission
        scores = {
            part: score_part(sub.ids, sub.probs, sub.classes, contest.answers, ids)
            for part, ids in (("public", public), ("private", private))
        }
        record = Record(
            id=record_id(created, len(past) + 1),
            team=team.name,
            dataset=dataset,
            created=created,
            file=filename,
            public=scores["public"],
            private=scores["private"],
            public_set=contest.public_set(settings.public_share),
        )
        layout, folder = Layout(out), team_folder(out, dataset, team.name).name
        order = np.argsort(sub.ids, kind="stable")
        ids = [sub.ids[i] for i in order]
        predictions = layout.competition_submission(dataset, folder, record.id)
        write_submission(predictions, ids, sub.probs[order], sub.classes, PRIVATE)
        # complete from here
        record_file = layout.competition_record(dataset, folder, record.id)
        write_json(record_file, dataclasses.asdict(record), PRIVATE)
        audit(out, "submission", now, **seen, submission=record.id,
              public_accuracy=record.public["accuracy"])  # fmt: skip
    return record


def refusal(team: Team, settings: Settings | None, past: list[Record], now: float) -> str | None:
    """Why a valid submission of ``team`` (with these ``past`` ones) is not taken at ``now``."""
    if settings is None:
        return "competition mode is off"
    reason = closed(settings, now)
    if reason:
        return f"{reason}: no more submissions"
    today = utc_stamp(now)[:10]
    if sum(r.day == today for r in past) >= settings.daily_limit:
        return (
            f"team {team.name} has used all {settings.daily_limit} submissions of today (UTC): "
            "try again tomorrow"
        )
    return None


def record_id(created: str, n: int) -> str:
    """``<time>-<n>-<random>``: in time order, and apart even where the lock does not hold
    (some NFS setups)."""
    return f"{created.replace('-', '').replace(':', '')}-{n:03d}-{secrets.token_hex(4)}"


def score_part(
    ids: Sequence[str],
    probs: np.ndarray,
    classes: Sequence[str],
    answers: AnswerKey,
    part: frozenset[str],
) -> dict:
    """The summary scores of the rows of ``part`` only."""
    rows = [i for i, image_id in enumerate(ids) if image_id in part]
    full = score(
        [ids[i] for i in rows],
        np.asarray(probs)[rows],
        classes,
        dataclasses.replace(answers, labels={i: answers.labels[i] for i in part}),
        auc=False,
    )
    return {k: full[k] for k in SUMMARY}


def select(out: Path, dataset: str, team: Team, record_id: str) -> None:
    """Choose an authenticated team's submission for the final (private) ranking; frozen once
    revealed."""
    with flocked(Layout(out).competition_lock):
        settings = load_settings(out)
        if settings is None or settings.revealed:
            raise SubmissionRefused(
                "the private scores are revealed: the final selection is frozen"
            )
        if record_id not in {r.id for r in history(out, dataset, team.name)}:
            raise ValueError(f"team {team.name} has no submission {record_id!r}")
        path = Layout(out).competition_selection(dataset, team.name)
        write_json(path, {"selected": record_id}, PRIVATE)


def selected(out: Path, dataset: str, team: str, records: list[Record]) -> Record | None:
    """The team's chosen submission; by default its best public one (the earliest of equals)."""
    if not records:
        return None
    path = Layout(out).competition_selection(dataset, sanitise_name(team))
    if path.is_file():
        chosen = read_json(path).get("selected")
        for r in records:
            if r.id == chosen:
                return r
    return best_public(records)


def final(out: Path, dataset: str, team: str, records: list[Record]) -> Record | None:
    """The team's submission for the final ranking: the one recorded at the reveal; before it
    (or for a competition revealed without a record), its selected one."""
    path = Layout(out).competition_final(dataset)
    if not path.is_file():
        return selected(out, dataset, team, records)
    chosen = read_json(path)["final"].get(team)
    return next((r for r in records if r.id == chosen), None)


def reveal(out: Path, now: float | None = None) -> Settings:
    """Show the private scores and close the competition for good: each dataset's
    ``final.json`` records every team's final submission (its selected one) before the settings
    say revealed, so that no later board recomputes it. A second reveal changes nothing."""
    with flocked(Layout(out).competition_lock):  # no submission or selection slips in between
        return _reveal(out, time.time() if now is None else now)


def _reveal(out: Path, now: float) -> Settings:
    settings = load_settings(out)
    if settings is None:
        raise UserError(f"{out}: competition mode is off; turn it on with --competition")
    if settings.revealed:
        return settings
    when = utc_stamp(now)
    finals_of = {}
    for dataset in datasets(out):
        public_set = load_key(out, dataset).public_set(settings.public_share)
        finals = {}
        for team in teams_of(out, dataset):
            records = [r for r in history(out, dataset, team) if r.public_set == public_set]
            chosen = selected(out, dataset, team, records)
            if chosen is not None:
                finals[team] = chosen.id
        record = {"revealed": when, "public_set": public_set, "final": finals}
        write_json(Layout(out).competition_final(dataset), record, PRIVATE)
        finals_of[dataset] = finals
    revealed = dataclasses.replace(settings, revealed=True)
    save_settings(out, revealed)
    audit(out, "reveal", now, final=finals_of)
    return revealed


def best_public(records: list[Record]) -> Record:
    """The highest public accuracy; the earliest of equals, as on Kaggle."""
    return min(records, key=lambda r: (-r.public["accuracy"], r.created, r.id))


def board(out: Path, dataset: str, settings: Settings, public_set: str) -> pd.DataFrame:
    """One row per team, ranked on the best public accuracy (equals share a rank, the earlier
    submission listed first). Revealed, it adds the final submission's private accuracy
    (``final``), the private rank and the shake-up (public rank − private rank: positive means
    the team climbed).

    Only submissions scored on the current public part (``public_set``) count: a changed share
    or answer key starts a new board rather than mixing scores of two test sets.
    """
    rows = []
    for team in teams_of(out, dataset):
        records = [r for r in history(out, dataset, team) if r.public_set == public_set]
        if not records:
            continue
        best = best_public(records)
        row = {
            "team": team,
            "public_acc": best.public["accuracy"],
            "public_bacc": best.public["balanced_accuracy"],
            "submissions": len(records),
            "_when": best.created,
        }
        if settings.revealed:
            chosen = final(out, dataset, team, records)
            if chosen is None:  # records made after the reveal, by hand: not in the final
                continue
            row |= {
                "selected": chosen.id,
                "private_acc": chosen.private["accuracy"],
                "private_bacc": chosen.private["balanced_accuracy"],
                "_final_when": chosen.created,
            }
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    # equal scores share a rank, as on the leaderboard; the earlier submission is listed first
    table = pd.DataFrame(rows).sort_values(["public_acc", "_when"], ascending=[False, True])
    table.insert(0, "public_rank", shared_rank(table["public_acc"]))
    if settings.revealed:
        table = table.sort_values(["private_acc", "_final_when"], ascending=[False, True])
        table.insert(0, "private_rank", shared_rank(table["private_acc"]))
        table["shake_up"] = table["public_rank"] - table["private_rank"]
    return table.drop(columns=[c for c in table.columns if c.startswith("_")]).reset_index(
        drop=True
    )


def _record(path: Path) -> Record:
    try:
        return Record(**read_json(path))
    except (OSError, json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"{path}: not a competition record ({exc})") from exc
