"""Test-time adaptation: AdaBN, TENT, TTA, and adapted entries of a tiny trained member."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from pipeline.commands import adapt as adapt_cli
from pipeline.commands import ensemble as ensemble_cli
from pipeline.commands import predict, zoo
from pipeline.evaluation.answers import AnswerKeys
from pipeline.evaluation.calibration import apply_temperature, fit_temperature
from pipeline.inference.adaptation import (
    Adaptation,
    adapted_probabilities,
    applicable,
    dihedral,
    parse_adaptations,
    probabilities,
    reestimate,
)
from pipeline.models import engine
from pipeline.ranking.cached_scores import Scorer
from pipeline.ranking.collect import find_entries
from pipeline.ranking.table import long_table
from pipeline.runs.submissions import read_submission
from pipeline.training.recipes import get_recipe, override

FAST = override(get_recipe("fast"), {"image_size": 32, "epochs": 1, "batch_size": 8}).name
MEMBER = f"resnet18-{FAST}-s0"

CPU = engine.Runtime(torch.device("cpu"), None, False, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def small_net(kernel: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, kernel, padding=kernel // 2),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    ).eval()


def images(n: int = 12, seed: int = 0, shift: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.integers(0, 200, (n, 8, 8, 3)) + shift, 0, 255).astype(np.uint8)


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_adabn_replaces_batchnorm_statistics_and_nothing_else() -> None:
    model, x = small_net(), images(12, shift=40)
    before = state(model)
    reestimate(model, x, np.arange(len(x)), CPU, size=64)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"1.running_mean", "1.running_var", "1.num_batches_tracked"}
    # one batch holds the whole set: the statistics are exactly the set's conv outputs'
    conv_out = model[0](CPU.to_input(torch.from_numpy(x).permute(0, 3, 1, 2)))
    assert torch.allclose(after["1.running_mean"], conv_out.mean(dim=(0, 2, 3)), atol=1e-5)
    assert not model.training and not model[1].training


@pytest.mark.trains
def test_adaptation_restores_the_member_afterwards() -> None:
    model, x = small_net(), images()
    before = state(model)
    for method in ("adabn", "tent"):
        adapted_probabilities(model, x, np.arange(len(x)), CPU, Adaptation(method, tta=True))
        after = model.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)
        assert all(p.requires_grad for p in model.parameters())
        assert model[1].momentum == 0.1


@pytest.mark.trains
def test_tent_changes_predictions_but_resets_between_sets() -> None:
    model = small_net()
    a, b = images(16, seed=1, shift=50), images(16, seed=2)
    tent = Adaptation("tent", tent_steps=3, tent_lr=0.5, batch=8)
    rows = np.arange(16)
    fresh = adapted_probabilities(small_net(), b, rows, CPU, tent)
    adapted_probabilities(model, a, rows, CPU, tent)
    after_a = adapted_probabilities(model, b, rows, CPU, tent)
    np.testing.assert_allclose(after_a, fresh, atol=1e-6)
    adabn = adapted_probabilities(small_net(), b, rows, CPU, Adaptation("adabn", batch=8))
    assert np.abs(fresh - adabn).max() > 1e-4  # the affine parameters did move


def test_tta_leaves_an_invariant_model_unchanged() -> None:
    x, rows = images(6), np.arange(6)
    invariant = small_net(kernel=1)  # pointwise convolution + global pooling
    plain = probabilities(invariant, x, rows, CPU, tta=False)
    np.testing.assert_allclose(probabilities(invariant, x, rows, CPU, tta=True), plain, atol=1e-6)
    oriented = small_net(kernel=3)
    shifted = probabilities(oriented, x, rows, CPU, tta=True)
    assert np.abs(shifted - probabilities(oriented, x, rows, CPU, tta=False)).max() > 1e-6


def test_dihedral_gives_the_eight_symmetries() -> None:
    x = torch.arange(9.0).view(1, 1, 3, 3)
    views = {tuple(dihedral(x, k).flatten().tolist()) for k in range(8)}
    assert len(views) == 8


def test_a_model_without_batchnorm_gets_only_the_adaptations_that_change_it() -> None:
    asked = parse_adaptations("adabn,tta,adabn+tta,tent,tta")
    assert [a.suffix for a in applicable(asked, small_net())] == [
        "+adabn",
        "+tta",
        "+adabn+tta",
        "+tent",
    ]
    no_bn = nn.Sequential(*[m for m in small_net() if not isinstance(m, nn.BatchNorm2d)])
    assert [a.suffix for a in applicable(asked, no_bn)] == ["+tta"]
    assert applicable(parse_adaptations("adabn,tent"), no_bn) == []


def test_adapting_a_member_without_batchnorm_writes_no_copy_of_it(
    trained_zoo: Path, trained_zoo_copy: Path, zoo_args
) -> None:
    out = trained_zoo_copy
    args = zoo_args(trained_zoo / "cells", out, "--adapt", "adabn,adabn+tta",
                    models="squeezenet1_1", cache=trained_zoo / "cache")  # fmt: skip
    with pytest.warns(UserWarning, match="no BatchNorm layer: \\+adabn, \\+adabn\\+tta"):
        assert zoo.main(args) == 0
    names = {e.name for e in find_entries(out) if e.name.startswith("squeezenet1_1")}
    assert names == {f"squeezenet1_1-{FAST}-s0", f"squeezenet1_1-{FAST}-s0+tta"}


@pytest.mark.parametrize(
    ("text", "suffixes"),
    [("adabn", ["+adabn"]), ("tta,adabn+tta", ["+tta", "+adabn+tta"]), ("tent", ["+tent"])],
)
def test_parse_adaptations(text: str, suffixes: list[str]) -> None:
    assert [a.suffix for a in parse_adaptations(text)] == suffixes


@pytest.mark.parametrize("text", ["adabn+tent", "bogus", "", "tta+tta"])
def test_parse_adaptations_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_adaptations(text)


def test_adapt_writes_transductive_entries_beside_the_member(
    trained_zoo: Path, trained_zoo_copy: Path, capsys
) -> None:
    out = trained_zoo_copy
    args = ["--members", MEMBER, "--adapt", "adabn,tta", "--out", str(out),
            "--cache-dir", str(trained_zoo / "cache"), "--device", "cpu"]  # fmt: skip
    assert adapt_cli.main(args) == 0
    printed = capsys.readouterr().out
    assert f"{MEMBER}+adabn" in printed and "lab2_bacc" in printed
    entries = {e.name: e for e in find_entries(out)}
    member, adabn = entries[MEMBER], entries[f"{MEMBER}+adabn"]
    assert adabn.kind == "adapted" and adabn.meta.transductive is True
    assert entries[f"{MEMBER}+tta"].meta.transductive is False
    assert sorted(adabn.files) == sorted(set(member.files) - {"val"})  # nothing chosen on it
    assert adabn.config == f"resnet18-{FAST}+adabn"  # seeds of one adaptation pool together
    assert adapt_cli.main(args) == 0  # an adaptation of the same member may be redone


def test_adapt_never_replaces_another_entry(
    trained_zoo: Path, trained_zoo_copy: Path, capsys
) -> None:
    out = trained_zoo_copy
    other = out / "submissions" / "cells" / f"{MEMBER}+tent"
    other.mkdir(parents=True)
    (other / "meta.json").write_text(json.dumps({"kind": "upload"}))
    args = ["--members", MEMBER, "--adapt", "tent", "--out", str(out),
            "--cache-dir", str(trained_zoo / "cache"), "--device", "cpu"]  # fmt: skip
    assert adapt_cli.main(args) == 2
    assert "is not an adaptation of" in capsys.readouterr().err
    assert json.loads((other / "meta.json").read_text()) == {"kind": "upload"}


def test_zoo_adapts_its_members_after_training(
    trained_zoo: Path, trained_zoo_copy: Path, zoo_args, capsys
) -> None:
    args = zoo_args(trained_zoo / "cells", trained_zoo_copy, "--eval",
                    f"lab2={trained_zoo / 'lab2'}", "--adapt", "adabn+tta", models="resnet18",
                    cache=trained_zoo / "cache")  # fmt: skip
    with pytest.warns(UserWarning, match=re.escape(MEMBER) + " on lab2: adabn estimate .* here 8"):
        assert zoo.main(args) == 0
    assert f"{MEMBER}+adabn+tta lab2" in " ".join(capsys.readouterr().out.split())
    folder = trained_zoo_copy / "submissions" / "cells" / f"{MEMBER}+adabn+tta"
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["adaptation"]["tta"] is True
    # calibrated by the member's temperature, as the meta.json it inherits says
    temperature = meta["calibration"]["temperature"]
    assert temperature != 1.0
    raw = read_submission(folder / "raw" / "lab2.csv").probs
    np.testing.assert_allclose(
        read_submission(folder / "lab2.csv").probs, apply_temperature(raw, temperature), atol=1e-6
    )


def test_predict_adapts_to_the_given_cells(trained_zoo: Path, tmp_path: Path) -> None:
    base = ["--member", MEMBER, "--out", str(trained_zoo / "out"), "--device", "cpu"]
    plain, adapted = tmp_path / "plain.csv", tmp_path / "adapted.csv"
    assert predict.main([*base, "--csv", str(plain), str(trained_zoo / "lab2")]) == 0
    with pytest.warns(UserWarning) as caught:
        assert predict.main([*base, "--csv", str(adapted), "--adapt", "adabn", "--tta",
                             str(trained_zoo / "lab2")]) == 0  # fmt: skip
    said = " ".join(str(w.message) for w in caught)
    assert "--adapt: adabn estimate from the set's own images, here 8 only" in said  # 8 cells
    assert f"no calibrated adapted entry {MEMBER}+adabn+tta: calibrated with the plain" in said
    a, b = pd.read_csv(plain), pd.read_csv(adapted)
    assert list(a["file"]) == list(b["file"]) and len(a) == 8
    numbers = ["eosinophil", "lymphocyte", "neutrophil"]
    assert np.abs(a[numbers].to_numpy() - b[numbers].to_numpy()).max() > 1e-6


@pytest.mark.filterwarnings("ignore:.*which is noisy")
def test_predict_calibrates_adapted_outputs_with_the_adapted_entrys_temperature(
    trained_zoo: Path, trained_zoo_copy: Path, tmp_path: Path
) -> None:
    out = trained_zoo_copy
    cache = str(trained_zoo / "cache")
    args = ["--members", MEMBER, "--adapt", "adabn+tta", "--out", str(out), "--cache-dir", cache]
    assert adapt_cli.main([*args, "--device", "cpu"]) == 0
    entries = out / "submissions" / "cells"
    adapted_meta = json.loads((entries / f"{MEMBER}+adabn+tta" / "meta.json").read_text())
    member_meta = json.loads((entries / MEMBER / "meta.json").read_text())
    t_adapted = adapted_meta["calibration"]["temperature"]
    assert t_adapted != pytest.approx(member_meta["calibration"]["temperature"])
    base = ["--member", MEMBER, "--out", str(out), "--device", "cpu", "--adapt", "adabn", "--tta"]
    raw, calibrated = tmp_path / "raw.csv", tmp_path / "calibrated.csv"
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="no calibrated adapted entry")
        assert (
            predict.main([*base, "--uncalibrated", "--csv", str(raw), str(trained_zoo / "lab2")])
            == 0
        )
        assert predict.main([*base, "--csv", str(calibrated), str(trained_zoo / "lab2")]) == 0
    numbers = ["eosinophil", "lymphocyte", "neutrophil"]
    a, b = pd.read_csv(raw)[numbers].to_numpy(), pd.read_csv(calibrated)[numbers].to_numpy()
    np.testing.assert_allclose(b, apply_temperature(a, t_adapted), atol=2e-4)


def test_an_ensemble_is_adapted_through_its_members_adapted_entries(
    trained_zoo: Path, trained_zoo_copy: Path, capsys
) -> None:
    """The ensemble keeps its validation-chosen weights and recombines its members' adapted
    predictions; a member without BatchNorm (squeezenet1_1) contributes its TTA entry."""
    out = trained_zoo_copy
    ens, squeeze = "ens-soft-custom", f"squeezenet1_1-{FAST}-s0"
    members = f"{MEMBER},{squeeze}"
    assert ensemble_cli.main(["--out", str(out), "--method", "soft", "--members", members]) == 0
    args = ["--members", ens, "--adapt", "adabn+tta", "--out", str(out),
            "--cache-dir", str(trained_zoo / "cache"), "--device", "cpu"]  # fmt: skip
    with pytest.warns(UserWarning, match="no BatchNorm layer"):
        assert adapt_cli.main(args) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert f"{ens} " in printed and f"{ens}+adabn+tta " in printed

    entries = {e.name: e for e in find_entries(out)}
    adapted = entries[f"{ens}+adabn+tta"]
    assert adapted.kind == "ensemble" and adapted.meta.transductive is True
    assert adapted.meta.adapted_from == ens and adapted.meta.adaptation["method"] == "adabn"
    assert f"{squeeze}+tta" in entries and f"{squeeze}+adabn+tta" not in entries
    weights = dict(zip(entries[ens].meta.members, entries[ens].meta.member_weights, strict=True))
    assert 0 < weights[squeeze] < 1  # both members count, so both sources are checked
    sources = {MEMBER: f"{MEMBER}+adabn+tta", squeeze: f"{squeeze}+tta"}
    expected = sum(weights[m] * read_submission(entries[s].files["lab2"]).probs
                   for m, s in sources.items())  # fmt: skip
    raw = read_submission(adapted.folder / "raw" / "lab2.csv").probs
    np.testing.assert_allclose(raw, expected / expected.sum(1, keepdims=True), atol=1e-5)
    plain = read_submission(entries[ens].files["lab2"]).probs
    assert np.abs(read_submission(adapted.files["lab2"]).probs - plain).max() > 1e-4

    rows = {r["entry"]: r for r in long_table(list(entries.values()), Scorer.of_zoo(out))
            .to_dict("records")}  # fmt: skip
    assert rows[f"{ens}+adabn+tta"]["transductive"] and not rows[ens]["transductive"]
    assert (
        rows[f"{ens}+adabn+tta"]["kind"] == "adapted ensemble" and rows[ens]["kind"] == "ensemble"
    )

    # a name of the wrong kind is one line naming the right flag, never a traceback
    wrong = {("--ensemble", f"{ens}+adabn+tta"): f"--ensemble {ens} --adapt",
             ("--member", ens): "an ensemble goes to --ensemble",
             ("--ensemble", MEMBER): "a member goes to --member",
             ("--member", f"{MEMBER}+adabn+tta"): f"name its member '{MEMBER}'"}  # fmt: skip
    for (flag, name), hint in wrong.items():
        argv = [flag, name, "--out", str(out), "--device", "cpu", str(trained_zoo / "lab2")]
        assert predict.main(argv) == 2
        err = capsys.readouterr().err
        assert hint in err and len(err.strip().splitlines()) == 1


def transductive_member_zoo(out: Path) -> Path:
    """``out``, a copy of the zoo, with its member made transductive (as one from a backbone
    pretrained on evaluation images is)."""
    meta_file = out / "submissions" / "cells" / MEMBER / "meta.json"
    meta_file.write_text(json.dumps(json.loads(meta_file.read_text()) | {"transductive": True}))
    return out


def test_an_adapted_entry_keeps_its_members_transductive_flag(
    trained_zoo: Path, trained_zoo_copy: Path
) -> None:
    """TTA alone is inductive, but the member under it already saw evaluation images."""
    out = transductive_member_zoo(trained_zoo_copy)
    args = ["--members", MEMBER, "--adapt", "tta", "--out", str(out),
            "--cache-dir", str(trained_zoo / "cache"), "--device", "cpu"]  # fmt: skip
    assert adapt_cli.main(args) == 0
    entries = {e.name: e for e in find_entries(out)}
    assert entries[f"{MEMBER}+tta"].meta.transductive is True


def ensemble_of_member_adapted(trained_zoo: Path, out: Path, ens: str) -> dict:
    """Build ``ens``, a soft ensemble of the member alone, adapt it with TTA; the entries."""
    assert ensemble_cli.main(["--out", str(out), "--method", "soft", "--members", MEMBER]) == 0
    args = ["--members", ens, "--adapt", "tta", "--out", str(out),
            "--cache-dir", str(trained_zoo / "cache"), "--device", "cpu"]  # fmt: skip
    assert adapt_cli.main(args) == 0
    return {e.name: e for e in find_entries(out)}


def test_an_ensemble_is_transductive_when_a_member_is(
    trained_zoo: Path, trained_zoo_copy: Path
) -> None:
    out = transductive_member_zoo(trained_zoo_copy)
    ens = "ens-soft-custom"
    entries = ensemble_of_member_adapted(trained_zoo, out, ens)
    assert entries[ens].meta.transductive is True
    assert entries[f"{ens}+tta"].meta.transductive is True
    rows = {r["entry"]: r for r in long_table(list(entries.values()), Scorer.of_zoo(out))
            .to_dict("records")}  # fmt: skip
    assert rows[ens]["transductive"] and rows[f"{ens}+tta"]["transductive"]


def val_labels(entry, ids: list[str]) -> np.ndarray:
    key = AnswerKeys().key(entry.meta.source("val"))
    return np.array([entry.meta.classes.index(key[i]) for i in ids])


def test_an_adapted_entry_fits_its_temperature_on_adapted_validation_outputs(
    trained_zoo: Path, trained_zoo_copy: Path
) -> None:
    """The member's temperature was fitted on plain validation outputs; AdaBN and TTA change
    them, so the adapted entry gets its own, from validation adapted the same way, which no
    submission holds (nothing is chosen on an adapted entry)."""
    out = trained_zoo_copy
    args = ["--members", MEMBER, "--adapt", "adabn+tta", "--out", str(out),
            "--cache-dir", str(trained_zoo / "cache"), "--device", "cpu"]  # fmt: skip
    assert adapt_cli.main(args) == 0
    entries = {e.name: e for e in find_entries(out)}
    adapted, member = entries[f"{MEMBER}+adabn+tta"], entries[MEMBER]
    assert "val" not in adapted.files and not (adapted.folder / "raw" / "val.csv").exists()
    fit = read_submission(out / "zoo" / "adapted" / "cells" / f"{MEMBER}+adabn+tta" / "val.csv")
    assert fit.ids == read_submission(member.files["val"]).ids
    expected = fit_temperature(fit.probs, val_labels(member, fit.ids))
    calibration = adapted.meta.calibration
    assert calibration["temperature"] == pytest.approx(expected, abs=1e-5)
    assert calibration["outputs"] == "adapted validation outputs" and calibration["n"] == len(
        fit.ids
    )
    assert abs(calibration["temperature"] - member.meta.temperature) > 1e-3
    raw = read_submission(adapted.folder / "raw" / "lab2.csv").probs
    np.testing.assert_allclose(
        read_submission(adapted.files["lab2"]).probs,
        apply_temperature(raw, calibration["temperature"]),
        atol=1e-6,
    )


def test_an_adapted_ensemble_fits_its_temperature_on_its_members_adapted_outputs(
    trained_zoo: Path, trained_zoo_copy: Path
) -> None:
    out = trained_zoo_copy
    ens = "ens-soft-custom"
    entries = ensemble_of_member_adapted(trained_zoo, out, ens)
    fits = out / "zoo" / "adapted" / "cells"
    member_fit = read_submission(fits / f"{MEMBER}+tta" / "val.csv")
    # one member: the soft ensemble's outputs are its calibrated +tta outputs
    combined = apply_temperature(member_fit.probs, entries[f"{MEMBER}+tta"].meta.temperature)
    np.testing.assert_allclose(
        read_submission(fits / f"{ens}+tta" / "val.csv").probs, combined, atol=1e-6
    )
    expected = fit_temperature(combined, val_labels(entries[ens], member_fit.ids))
    adapted = entries[f"{ens}+tta"].meta
    assert adapted.temperature == pytest.approx(expected, abs=1e-5)
    assert adapted.calibration["outputs"] == "adapted validation outputs"
    assert abs(adapted.temperature - entries[ens].meta.temperature) > 1e-4
