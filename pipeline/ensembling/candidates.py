"""Candidate members: the zoo's submission files, read, validated and aligned."""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import UserError
from pipeline.runs.layout import META_FILE, EntryFiles
from pipeline.runs.metadata import MemberMeta, MetaError, read_entry
from pipeline.runs.recipe import settings_fingerprint
from pipeline.runs.submissions import Submission, SubmissionError, read_submission


class MemberMismatchError(UserError, ValueError):
    """Members that cannot be ensembled together (ids, classes or datasets differ)."""


@dataclass
class Candidate:
    name: str
    meta: MemberMeta
    sets: dict[str, Submission]  # set name -> predictions
    folder: Path
    pooled_from: tuple[str, ...] = ()  # the seeds' members, for a candidate that pools them

    def probs(self, set_name: str) -> np.ndarray:
        return self.sets[set_name].probs


def load_candidates(folder: Path) -> list[Candidate]:
    """Every trained member under ``submissions/<dataset>/``; ensembles are not candidates."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist: train members with pipeline.zoo first")
    found = []
    for member in sorted(p for p in folder.iterdir() if p.is_dir()):
        meta_file = member / META_FILE
        if not meta_file.exists():
            warnings.warn(f"{member}: no meta.json, skipped", stacklevel=2)
            continue
        try:
            meta = read_entry(meta_file)
            if type(meta) is not MemberMeta:  # ensembles, adapted entries, uploads are not
                continue
            files = EntryFiles(member).prediction_files()
            if "val" not in files:
                warnings.warn(
                    f"{member}: no val.csv (validation submission), skipped", stacklevel=2
                )
                continue
            sets = {set_name: read_filled(csv) for set_name, csv in files.items()}
        except (MetaError, SubmissionError) as exc:  # one damaged member spoils no ensemble
            warnings.warn(f"{exc}; member skipped", stacklevel=2)
            continue
        found.append(Candidate(member.name, meta, sets, member))
    if not found:
        raise FileNotFoundError(f"{folder} holds no member with a validation submission")
    check_compatible(found)
    return found


def read_filled(path: Path) -> Submission:
    """A submission with at least one row (a header alone is a damaged file)."""
    sub = read_submission(path)
    if not sub.ids:
        raise SubmissionError(f"{path}: no rows, only a header")
    return sub


def check_compatible(candidates: list[Candidate]) -> None:
    """Same classes, same images per set, same datasets; errors name the two files."""
    first = candidates[0]
    for other in candidates[1:]:
        if other.sets["val"].classes != first.sets["val"].classes:
            raise MemberMismatchError(
                f"class columns differ: {first.folder / 'val.csv'} has "
                f"{list(first.sets['val'].classes)}, {other.folder / 'val.csv'} has "
                f"{list(other.sets['val'].classes)}"
            )
        for name in set(first.sets) & set(other.sets):
            if first.sets[name].ids != other.sets[name].ids:
                raise MemberMismatchError(
                    f"image ids differ between {first.folder / (name + '.csv')} and "
                    f"{other.folder / (name + '.csv')}"
                )
            a = first.meta.source(name)
            b = other.meta.source(name)
            if a and b and a != b:
                raise MemberMismatchError(
                    f"set {name!r} comes from different datasets: {a} in "
                    f"{first.folder / 'meta.json'}, {b} in {other.folder / 'meta.json'}"
                )


def pool_seeds(candidates: list[Candidate]) -> list[Candidate]:
    """One candidate per architecture and recipe: the mean of its seeds' probabilities.

    Seeds are pooled only with seeds trained alike (``runs.recipe.settings_fingerprint``); where one
    architecture and recipe name was trained several ways, each way is its own candidate,
    named with its fingerprint."""
    groups: dict[tuple[str, str, str], list[Candidate]] = {}
    for c in candidates:
        key = (c.meta.arch or c.name, c.meta.recipe.get("name", ""))
        groups.setdefault((*key, settings_fingerprint(c.meta)), []).append(c)
    ways = Counter((arch, recipe) for arch, recipe, _ in groups)
    pooled = []
    for (arch, recipe, settings), members in groups.items():
        if len(members) == 1:
            pooled.append(members[0])
            continue
        shared = set.intersection(*(set(m.sets) for m in members))
        sets = {
            name: Submission(
                members[0].sets[name].ids,
                members[0].sets[name].classes,
                np.mean([m.probs(name) for m in members], axis=0),
            )
            for name in sorted(shared)
        }
        variant = f"~{settings}" if ways[arch, recipe] > 1 else ""
        name = f"{arch}-{recipe}{variant}-pooled"
        pooled_from = tuple(m.name for m in members)
        pooled.append(Candidate(name, members[0].meta, sets, members[0].folder, pooled_from))
    return pooled
