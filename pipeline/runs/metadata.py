"""A submission folder's ``meta.json``: what it holds, per kind of entry, and the one reader
that checks its shape and migrates older files.

:func:`read_entry` returns a :class:`MemberMeta`, :class:`AdaptedMeta`, :class:`EnsembleMeta` or
:class:`UploadMeta`; fields that older versions did not write get their defaults (None where a
reader must tell "absent" apart), and fields this version does not compute with are kept in
``extra`` and written back unchanged. A file that is not UTF-8 JSON, not an object, of an
unknown kind or with fields of the wrong type is a :class:`MetaError` naming the file, which the
leaderboard and the ensembler report and skip.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Self

from pipeline.errors import UserError
from pipeline.io import write_json

# fields that readers compute with, and the JSON types they must have when present
_TYPES: dict[str, tuple[type, ...]] = {
    "kind": (str,),
    "member": (str,),
    "arch": (str,),
    "family": (str,),
    "norm": (str, list),
    "weights": (str, list),
    "weights_init": (list,),
    "classes": (list,),
    "recipe": (dict,),
    "params": (int, float),
    "gmacs": (int, float),
    "image_size": (int,),
    "seed": (int,),
    "estimator": (str,),
    "stack_model": (str,),
    "method": (str,),
    "members": (list,),
    "dataset": (str,),
    "calibration": (dict,),
    "normalisation": (dict,),
    "stain_norm": (dict,),
    "adaptation": (dict,),
    "aux_heads": (list,),
    "out_of_fold": (dict,),
}
_SOURCE_KEYS = ("adapter", "root")


class MetaError(UserError, ValueError):
    """A ``meta.json`` that cannot be used."""


def read_meta(path: Path) -> dict[str, Any]:
    """The checked contents of ``path``: a JSON object whose ``sets`` maps set names to answer
    key sources (``adapter``, ``root``, optional ``split``)."""
    try:
        meta = json.loads(Path(path).read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise MetaError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise MetaError(f"{path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise MetaError(f"{path}: unreadable ({exc.strerror or exc})") from None
    if not isinstance(meta, dict):
        raise MetaError(f"{path}: must hold a JSON object, not {type(meta).__name__}")
    for key, types in _TYPES.items():
        value = meta.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
            names = " or ".join(_JSON_NAMES[t] for t in types)
            raise MetaError(f"{path}: {key!r} must be {names}, not {json.dumps(value)[:40]}")
    if "sets" in meta:
        check_sets(path, meta["sets"])
    return meta


def check_sets(path: Path, sets: object) -> None:
    if not isinstance(sets, dict):
        raise MetaError(f"{path}: 'sets' must map set names to answer-key sources")
    for name, source in sets.items():
        if not (
            isinstance(source, dict)
            and all(isinstance(source.get(k), str) for k in _SOURCE_KEYS)
            and isinstance(source.get("split"), str | None)
            and isinstance(source.get("unreadable", []), list)
        ):
            raise MetaError(
                f"{path}: set {name!r} must name its answer key as "
                '{"adapter": ..., "root": ..., "split": ... or null, "unreadable": [...]}'
            )


_JSON_NAMES = {str: "a string", list: "a list", dict: "an object", int: "a number",
               float: "a number"}  # fmt: skip


@dataclass(frozen=True)
class EntryMeta:
    """What every entry's ``meta.json`` holds: its name, dataset, classes, and for each set
    where its answer key comes from (``{"adapter", "root", "split", "unreadable"}``)."""

    kind: ClassVar[str]
    # attributes kept under another key: the key files have always had (first versions wrote
    # members only), the attribute what it holds
    KEYS: ClassVar[dict[str, str]] = {"name": "member"}
    name: str = ""
    dataset: str = ""
    classes: tuple[str, ...] = ()
    sets: dict[str, dict] = field(default_factory=dict)
    test_set: str | None = None  # fingerprint of the scored test ids
    calibration: dict = field(default_factory=dict)
    command: str | None = None
    created: str | None = None
    git_commit: str | None = None
    versions: dict = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # fields kept as written

    @property
    def temperature(self) -> float:
        """The temperature fitted on validation (1: none, e.g. from before calibration)."""
        return float(self.calibration.get("temperature", 1.0))

    def source(self, set_name: str) -> dict | None:
        return self.sets.get(set_name)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {self.KEYS["name"]: self.name, "kind": self.kind}
        for f in fields(self):
            if f.name not in ("name", "extra"):
                value = getattr(self, f.name)
                key = self.KEYS.get(f.name, f.name)
                out[key] = list(value) if isinstance(value, tuple) else value
        return {**self.extra, **out}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        known = {f.name for f in fields(cls)} - {"extra"}
        attribute = {key: name for name, key in cls.KEYS.items()}
        values, extra = {}, {}
        for key, value in data.items():
            # a key spelled like a renamed attribute (an old upload's "name") is not that one
            name = attribute.get(key, None if key in cls.KEYS else key)
            if name in known:
                if value is not None:
                    tuples = isinstance(value, list) and name in _TUPLES
                    values[name] = tuple(value) if tuples else value
            elif key != "kind":
                extra[key] = value
        return cls(**values, extra=extra)

    def with_changes(self, **changes: Any) -> Self:
        return replace(self, **changes)


@dataclass(frozen=True)
class MemberMeta(EntryMeta):
    """A trained member (``pipeline.training.member``)."""

    kind: ClassVar[str] = "member"
    KEYS: ClassVar[dict[str, str]] = EntryMeta.KEYS | {"init": "weights"}
    arch: str | None = None
    builder: str | None = None
    family: str | None = None
    norm: str | None = None
    seed: int | None = None
    recipe: dict = field(default_factory=dict)
    init: str | None = None  # the weights it started from: imagenet, none or file
    weights_requested: str | None = None
    weights_file: dict | None = None  # a backbone of pipeline.pretrain: path, sha256, how made
    weights_sha256: str | None = None
    transductive: bool = False  # its predictions (or its backbone) saw evaluation images
    data_fingerprint: str | None = None
    image_size: int | None = None
    normalisation: dict | None = None  # {"mean": [...], "std": [...]}; None: its architecture's
    stain_norm: dict | None = None
    aux_heads: tuple[str, ...] = ()
    params: int = 0
    gmacs: float | None = None
    epochs: int | None = None
    best_epoch: int | None = None
    train_time_s: float | None = None
    device: str | None = None
    precision: str | None = None  # fp32, bfloat16 or float16
    augment_on_device: tuple[str, ...] = ()
    compiled: bool = False
    deterministic: bool = False


@dataclass(frozen=True)
class AdaptedMeta(MemberMeta):
    """A member adapted at test time (``pipeline.adapt``): its member's fields, and how."""

    kind: ClassVar[str] = "adapted"
    adapted_from: str = ""
    adaptation: dict = field(default_factory=dict)


@dataclass(frozen=True)
class EnsembleMeta(EntryMeta):
    """An ensemble (``pipeline.ensemble``); its fitted method is ``estimator``, a file in
    ``OUT/zoo/ensembles/<dataset>/<name>/`` (older ensembles: ``method``, ``member_weights`` and a
    stacker's ``stack_model``). An adapted ensemble (``pipeline.adapt``) is that method applied
    to its members' adapted entries: ``adapted_from`` names the ensemble, ``adaptation`` how."""

    kind: ClassVar[str] = "ensemble"
    KEYS: ClassVar[dict[str, str]] = EntryMeta.KEYS | {
        "member_weights": "weights",
        "member_inits": "weights_init",
    }
    method: str = ""
    members: tuple[str, ...] = ()
    member_weights: tuple[float, ...] = ()  # how the method combines them, in their order
    estimator: str | None = None
    stack_model: str | None = None
    top: int | None = None
    family: str = "ensemble"
    norm: tuple[str, ...] = ()
    member_inits: tuple[str, ...] = ()  # the weights its members started from
    params: int = 0
    gmacs: float | None = None
    adapted_from: str = ""  # an adapted ensemble: the ensemble whose method it reapplies
    adaptation: dict = field(default_factory=dict)
    transductive: bool = False  # some member is, or its adaptation is
    # a fitted method's cross-fitted validation score: {"accuracy", "folds", "seed"}; empty for
    # vote and soft, and for ensembles built before it was measured
    out_of_fold: dict = field(default_factory=dict)

    @property
    def val_acc_oof(self) -> float | None:
        """The out-of-fold validation accuracy it is chosen by, where it was fitted; an adapted
        ensemble has none (it has no validation predictions of its own)."""
        value = self.out_of_fold.get("accuracy")
        if self.adapted_from or not isinstance(value, int | float) or isinstance(value, bool):
            return None
        return float(value)


@dataclass(frozen=True)
class UploadMeta(EntryMeta):
    """A submission uploaded to the leaderboard (``pipeline.ranking.upload``)."""

    kind: ClassVar[str] = "upload"
    description: str = ""  # the uploader's own words


def is_transductive(meta: EntryMeta) -> bool:
    """Whether an entry's predictions (or anything they were made from) saw evaluation images;
    an upload says nothing of the kind."""
    return isinstance(meta, MemberMeta | EnsembleMeta) and meta.transductive


KINDS: dict[str, type[EntryMeta]] = {
    m.kind: m for m in (MemberMeta, AdaptedMeta, EnsembleMeta, UploadMeta)
}
_TUPLES = {"classes", "aux_heads", "members", "member_weights", "norm", "member_inits",
           "augment_on_device"}  # fmt: skip


def entry_meta(data: dict[str, Any], path: Path) -> EntryMeta:
    """The typed form of a checked ``meta.json`` (``read_meta``); no kind means a member, as
    the first versions wrote."""
    kind = data.get("kind", "member")
    data = {"member": path.parent.name, **data}
    if kind not in KINDS:
        raise MetaError(
            f"{path}: unknown kind {json.dumps(kind)[:40]}: use one of {', '.join(KINDS)}"
        )
    return KINDS[kind].from_json(data)


def read_entry(path: Path) -> EntryMeta:
    """The checked, typed ``meta.json`` at ``path``."""
    return entry_meta(read_meta(path), path)


def write_entry(path: Path, meta: EntryMeta) -> None:
    """Write ``meta`` as the ``meta.json`` at ``path`` (atomically: a reader sees the old file
    or the new one)."""
    write_json(path, meta.to_json())
