"""Reading a submission folder's ``meta.json``: the one place that checks its shape.

The leaderboard and the ensembler trust what this returns; a file that is not UTF-8 JSON, not
an object, or holds fields of the wrong type is a :class:`MetaError` naming the file, which
they report and skip.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.errors import UserError

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
