"""The output folder's layout: the one place that knows where each file of a zoo lives.

``OUT/submissions/<dataset>/<name>/`` holds what the leaderboard reads (``<set>.csv``,
``raw/<set>.csv``, ``meta.json``) for members, ensembles, adapted members and uploads alike;
``OUT/zoo/`` holds the rest: member checkpoints and histories, fitted ensembles, run tables,
the manifest and locks, explanations, exports and caches; ``OUT/competition/`` a competition's
settings, teams, audit log, and per dataset its key and each team's submissions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UserError
from pipeline.names import plain_name

META_FILE = "meta.json"  # an entry's metadata, beside its submission files
METRICS_FILE = "metrics.json"  # a member's or ensemble's scores, in its zoo folder
HISTORY_FILE = "history.csv"  # a member's epochs
RAW_FOLDER = "raw"  # inside an entry's folder: its uncalibrated probabilities
OUT_ENV = "WBCZOO_OUT"
OUT_DEFAULT = "runs"  # relative to the working folder; ignored in a checkout (.gitignore)


def default_out() -> Path:
    """Where every command and the app write and read a zoo without ``--out``: ``WBCZOO_OUT``,
    else ``runs/``, so that runs never mix with what a checkout ships in ``zoo/``."""
    return Path(os.environ.get(OUT_ENV) or OUT_DEFAULT)


@dataclass(frozen=True)
class EntryFiles:
    """One entry's submission folder: ``<set>.csv`` (what the leaderboard and the ensembler
    read), ``raw/<set>.csv`` (uncalibrated, where the entry is calibrated) and ``meta.json``."""

    folder: Path

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def meta(self) -> Path:
        return self.folder / META_FILE

    def predictions(self, set_name: str) -> Path:
        return self.folder / f"{set_name}.csv"

    def raw(self, set_name: str) -> Path:
        return self.folder / RAW_FOLDER / f"{set_name}.csv"

    def prediction_files(self) -> dict[str, Path]:
        """Set name -> its ``<set>.csv``, sorted by name."""
        return {p.stem: p for p in sorted(self.folder.glob("*.csv"))}

    def raw_files(self) -> dict[str, Path]:
        """Set name -> its ``raw/<set>.csv``, sorted by name."""
        return {p.stem: p for p in sorted((self.folder / RAW_FOLDER).glob("*.csv"))}


@dataclass(frozen=True)
class Layout:
    out: Path

    @property
    def submissions_root(self) -> Path:
        return self.out / "submissions"

    @property
    def zoo(self) -> Path:
        return self.out / "zoo"

    def submissions(self, dataset: str) -> Path:
        """Every entry trained on ``dataset``."""
        return self.submissions_root / dataset

    def dataset_tag(self, tag: str | None) -> str:
        """``tag`` (``--tag``), else the one dataset the zoo holds; a clear error when it holds
        none or several."""
        if tag:
            return plain_name(tag, "--tag")
        root = self.submissions_root
        tags = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        if len(tags) != 1:
            found = ", ".join(tags) or "none"
            raise UserError(f"{root} holds {len(tags)} datasets ({found}): pick one with --tag")
        return tags[0]

    def submission(self, dataset: str, name: str) -> Path:
        """One entry's submission files and ``meta.json``."""
        return self.submissions(dataset) / name

    def entry(self, dataset: str, name: str) -> EntryFiles:
        """The files of the entry ``submission(dataset, name)`` holds."""
        return EntryFiles(self.submission(dataset, name))

    def meta(self, dataset: str, name: str) -> Path:
        return self.entry(dataset, name).meta

    def meta_files(self, dataset: str | None = None, name: str | None = None) -> list[Path]:
        """Every entry's ``meta.json`` (of one dataset or all; of one name or all), sorted;
        both are plain names (``pipeline.names``), never patterns."""
        return sorted(self.submissions_root.glob(f"{dataset or '*'}/{name or '*'}/{META_FILE}"))

    def member(self, dataset: str, name: str) -> Path:
        """A member's checkpoints, history and metrics."""
        return self.zoo / "members" / dataset / name

    def ensemble(self, dataset: str, name: str) -> Path:
        """A fitted ensemble (``ensemble.joblib``) and its metrics."""
        return self.zoo / "ensembles" / dataset / name

    def adapted_fit(self, dataset: str, name: str) -> Path:
        """An adapted entry's validation outputs (``val.csv``, uncalibrated) its temperature was
        fitted on: kept out of its submissions, so nothing is chosen on them."""
        return self.zoo / "adapted" / dataset / name

    def explanations(self, dataset: str, name: str) -> Path:
        return self.zoo / "explain" / dataset / name

    def export(self, dataset: str, name: str) -> Path:
        return self.zoo / "export" / dataset / name

    def results(self, dataset: str, seeds: bool = False) -> Path:
        """The zoo's table of members (``seeds``: their mean over seeds)."""
        return self.zoo / f"results-{dataset}{'-seeds' if seeds else ''}.csv"

    def ensembles_table(self, dataset: str) -> Path:
        return self.zoo / f"ensembles-{dataset}.csv"

    def manifest(self, dataset: str) -> Path:
        return self.zoo / f"manifest-{dataset}.json"

    def lock(self, dataset: str, member: str) -> Path:
        return self.zoo / "locks" / dataset / f"{member}.lock"

    @property
    def answers(self) -> Path:
        """Answer keys written down with the zoo (``pipeline.reference``), used for its sets
        in place of the datasets' own."""
        return self.zoo / "answers.json"

    def scores_cache(self, part: str | None = None) -> Path:
        """The leaderboard's score cache; a board whose cross-lab sets are scored on one of
        their parts (``choose``, ``report``) keeps its own."""
        return self.zoo / (
            "leaderboard-cache.json" if part is None else f"leaderboard-cache-{part}.json"
        )

    @property
    def competition(self) -> Path:
        return self.out / "competition"

    @property
    def competition_settings(self) -> Path:
        return self.competition / "settings.json"

    @property
    def competition_teams(self) -> Path:
        return self.competition / "teams.json"

    @property
    def competition_audit(self) -> Path:
        return self.competition / "audit.jsonl"

    @property
    def competition_lock(self) -> Path:
        """Held while a submission is counted and written, and while the reveal records."""
        return self.competition / ".lock"

    def contest(self, dataset: str) -> Path:
        """``dataset``'s competition: its key and a folder per team."""
        return self.competition / plain_name(dataset, "dataset")

    def competition_key(self, dataset: str) -> Path:
        """The key of ``dataset``'s competition (ids, labels, the public/private salt)."""
        return self.contest(dataset) / "key.json"

    def competition_final(self, dataset: str) -> Path:
        """Each team's final submission to ``dataset``'s competition, recorded at the reveal."""
        return self.contest(dataset) / "final.json"

    def competition_team(self, dataset: str, team: str) -> Path:
        """A team's submissions to ``dataset``'s competition (``team``: a sanitised name)."""
        return self.contest(dataset) / plain_name(team, "team")

    def competition_submission(self, dataset: str, team: str, record: str) -> Path:
        """The predictions of a team's submission ``record`` (an id), kept private."""
        return self.competition_team(dataset, team) / f"{record}.csv"

    def competition_record(self, dataset: str, team: str, record: str) -> Path:
        """What the competition recorded of it (scores, time, file name); written last."""
        return self.competition_team(dataset, team) / f"{record}.json"

    def competition_selection(self, dataset: str, team: str) -> Path:
        """The submission a team selected for the final ranking."""
        return self.competition_team(dataset, team) / "selected.json"

    def competition_files(self) -> list[Path]:
        """Every file of the competition's own beside the team folders and datasets' folders:
        no team may take one's name."""
        example = "dataset"
        return [
            self.competition_settings,
            self.competition_teams,
            self.competition_audit,
            self.competition_lock,
            self.competition_key(example),
            self.competition_final(example),
            self.competition_selection(example, example),
        ]

    @property
    def tuning(self) -> Path:
        return self.zoo / "tuning"

    @property
    def slurm(self) -> Path:
        return self.zoo / "slurm"

    def pretrained(self, name: str) -> Path:
        return self.zoo / "pretrained" / f"{name}.pt"
