"""The typed meta.json reader: kinds, validation, and files written by older versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.runs.metadata import (
    AdaptedMeta,
    EnsembleMeta,
    MemberMeta,
    MetaError,
    UploadMeta,
    read_entry,
)

# a member's meta.json as the first versions wrote it: no kind, no calibration, no
# normalisation, stain, crop or test-set fingerprint, and a field this version does not know
OLD_MEMBER = {
    "member": "resnet18-fast-s0",
    "arch": "resnet18",
    "family": "ResNet",
    "norm": "bn",
    "dataset": "pbc",
    "classes": ["eosinophil", "lymphocyte"],
    "seed": 0,
    "recipe": {"name": "fast", "lr": 0.002},
    "weights": "none",
    "image_size": 64,
    "params": 11000000,
    "gmacs": 0.15,
    "sets": {"val": {"adapter": "pbc", "root": "/data/PBC", "split": "val"}},
    "retired_field": [1, 2],
}


def write(folder: Path, meta: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder / "meta.json"


def test_an_old_member_reads_with_defaults_and_rewrites_losslessly(tmp_path: Path) -> None:
    path = write(tmp_path / "resnet18-fast-s0", OLD_MEMBER)
    meta = read_entry(path)
    assert type(meta) is MemberMeta and meta.kind == "member"
    assert meta.classes == ("eosinophil", "lymphocyte") and meta.image_size == 64
    assert meta.temperature == 1.0  # from before calibration
    assert meta.normalisation is None and meta.stain_norm is None and meta.test_set is None
    assert meta.source("val") == OLD_MEMBER["sets"]["val"] and meta.source("test") is None
    assert meta.extra == {"retired_field": [1, 2]}
    rewritten = meta.with_changes(calibration={"method": "temperature", "temperature": 1.5})
    again = write(tmp_path / "again", rewritten.to_json())
    back = read_entry(again)
    assert back == rewritten and back.temperature == 1.5
    assert back.to_json()["retired_field"] == [1, 2]


def test_a_meta_without_member_is_named_by_its_folder(tmp_path: Path) -> None:
    meta = {k: v for k, v in OLD_MEMBER.items() if k != "member"}
    assert read_entry(write(tmp_path / "vgg11-fast-s1", meta)).name == "vgg11-fast-s1"


def test_each_kind_reads_as_its_own_class(tmp_path: Path) -> None:
    kinds = {
        "ensemble": ({"method": "soft", "members": ["a", "b"], "weights": [0.5, 0.5]},
                     EnsembleMeta),
        "adapted": ({**OLD_MEMBER, "adapted_from": "resnet18-fast-s0", "transductive": True},
                    AdaptedMeta),
        "upload": ({"name": "team"}, UploadMeta),
    }  # fmt: skip
    for kind, (fields, cls) in kinds.items():
        meta = read_entry(write(tmp_path / kind, {"member": kind, "kind": kind, **fields}))
        assert type(meta) is cls and meta.to_json()["kind"] == kind
    ensemble = read_entry(tmp_path / "ensemble" / "meta.json")
    assert ensemble.members == ("a", "b") and ensemble.estimator is None  # from before estimators


def test_attributes_say_what_they_hold_and_files_keep_their_keys(tmp_path: Path) -> None:
    member = read_entry(write(tmp_path / "m", {**OLD_MEMBER, "weights": "imagenet"}))
    assert member.name == OLD_MEMBER["member"] and member.init == "imagenet"
    ensemble = read_entry(write(tmp_path / "e", {"member": "ens", "kind": "ensemble",
                                                 "weights": [0.25, 0.75],
                                                 "weights_init": ["none"]}))  # fmt: skip
    assert ensemble.member_weights == (0.25, 0.75) and ensemble.member_inits == ("none",)
    written = ensemble.to_json()
    assert written["member"] == "ens" and written["weights"] == [0.25, 0.75]
    assert {"name", "member_weights", "member_inits"}.isdisjoint(written)
    # an upload of an earlier version also wrote its name as "name": kept, never taken for it
    upload = read_entry(write(tmp_path / "u", {"member": "u", "kind": "upload", "name": "x"}))
    assert upload.name == "u" and upload.to_json()["name"] == "x"


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"kind": "robot"}, "unknown kind"),
        ({"calibration": "hot"}, "'calibration' must be an object"),
        ({"members": "a,b", "kind": "ensemble"}, "'members' must be a list"),
        ({"estimator": 3, "kind": "ensemble"}, "'estimator' must be a string"),
    ],
)
def test_malformed_fields_name_the_file(tmp_path: Path, bad: dict, message: str) -> None:
    path = write(tmp_path / "x", {**OLD_MEMBER, **bad})
    with pytest.raises(MetaError, match=message) as err:
        read_entry(path)
    assert str(path) in str(err.value)
