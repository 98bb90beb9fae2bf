"""ONNX export: onnxruntime gives PyTorch's probabilities on real cell images."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from pipeline.classes import CLASSES
from pipeline.commands import export as export_cli
from pipeline.data.cache import decode
from pipeline.data.stain import fit_reference
from pipeline.ensembling.methods import EnsembleMethod, GreedyEnsemble
from pipeline.inference import onnx_bundle
from pipeline.inference.load import (
    LoadedEnsemble,
    LoadedMember,
    load_ensemble,
    load_member,
    member_probs,
)
from pipeline.models import create_model, load_catalogue
from pipeline.models.factory import get_module
from pipeline.runs.checkpoint import WEIGHTS_FILE, save_weights
from pipeline.runs.metadata import EnsembleMeta

ort = pytest.importorskip("onnxruntime")

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "pbc-sample" / "PBC_dataset_normal_DIB"
TOLERANCE = 2e-4  # float32: the deepest members differ by ~1e-4 between the two runtimes
# The smallest member of each family, at a small input: onnxruntime must agree with PyTorch.
FAMILIES = {
    "resnet18": 32,
    "squeezenet1_1": 32,
    "mobilenet_v2": 32,
    "densenet121": 32,
    "googlenet": 32,
    "inception_v3": 75,
    "efficientnet_v2_s": 32,
    "resnext50_32x4d": 32,
}
# Families whose smallest member makes a 100-500 MB file (tens of seconds each on a CPU): run
# with WBCZOO_SLOW_TESTS=1 (the slow marker). AlexNet and VGG at these sizes need MatrixPool.
LARGE_FAMILIES = {
    "convnext_tiny": 32,
    "vit_b_16": 32,
    "alexnet": 64,
    "vgg11": 64,
    "wide_resnet50_2": 32,
}


def sample_files(per_class: int = 2) -> list[Path]:
    """Real PBC cells from the bundled sample, a few of every class."""
    return [p for c in CLASSES for p in sorted((SAMPLE / c).glob("*.jpg"))[:per_class]]


def sample_images(member: LoadedMember) -> np.ndarray:
    return np.stack([decode(p, member.image_size, member.crop)[0] for p in sample_files()])


def fake_trained_member(
    out: Path, arch: str, size: int = 32, temperature: float = 1.7, seed: int = 0
) -> str:
    """A catalogue member with random weights whose BatchNorm statistics come from real cells
    (untouched statistics make near-uniform outputs that any graph would match), saved as the
    zoo saves one."""
    entry = load_catalogue()[arch]
    torch.manual_seed(seed)
    model, _ = create_model(entry, len(CLASSES), "none", size)
    files = sample_files(per_class=4)
    x = torch.from_numpy(np.stack([decode(p, size)[0] for p in files])).permute(0, 3, 1, 2)
    mean, std = torch.tensor(entry.mean).view(1, 3, 1, 1), torch.tensor(entry.std).view(1, 3, 1, 1)
    for module in model.modules():  # running statistics = these cells' statistics
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = 1.0
    model.train()
    with torch.no_grad():
        model((x.float() / 255 - mean) / std)
        # logits of unit spread: probabilities neither near-uniform (VGG, AlexNet at random
        # init) nor saturated, both of which any graph would match
        model.eval()
        spread = model((x.float() / 255 - mean) / std).std()
        head = get_module(model, entry.head)
        head.weight.div_(spread)
        head.bias.div_(spread)
    name = f"{arch}-fast-s{seed}"
    save_weights(out / "zoo" / "members" / "pbc" / name / WEIGHTS_FILE, model, 1)
    meta = {
        "member": name,
        "kind": "member",
        "arch": arch,
        "dataset": "pbc",
        "classes": list(CLASSES),
        "seed": seed,
        "recipe": {"name": "fast", "crop": "centre"},
        "image_size": size,
        "normalisation": {"mean": list(entry.mean), "std": list(entry.std)},
        "calibration": {"method": "temperature", "temperature": temperature},
    }
    folder = out / "submissions" / "pbc" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").write_text(json.dumps(meta))
    return name


def onnx_probs(folder: Path, images: np.ndarray, output: str = "probs") -> np.ndarray:
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run([output], {onnx_bundle.INPUT: images})[0]


@pytest.mark.parametrize(
    ("arch", "size"),
    [
        *FAMILIES.items(),
        *(pytest.param(a, s, marks=pytest.mark.slow) for a, s in LARGE_FAMILIES.items()),
    ],
)
def test_onnxruntime_reproduces_pytorch_on_real_cells(tmp_path: Path, arch: str, size: int) -> None:
    name = fake_trained_member(tmp_path, arch, size)
    folder = onnx_bundle.export(tmp_path, name, "member")
    member = load_member(tmp_path, name, device="cpu")
    images = sample_images(member)
    expected = member_probs(member, images)
    assert expected.std(axis=0).max() > 10 * TOLERANCE  # the cells get different answers
    np.testing.assert_allclose(onnx_probs(folder, images), expected, atol=TOLERANCE)
    raw = member_probs(member, images, calibrated=False)
    np.testing.assert_allclose(onnx_probs(folder, images, "probs_raw"), raw, atol=TOLERANCE)
    contract = json.loads((folder / "model.json").read_text())
    assert contract["classes"] == list(CLASSES) and contract["temperature"] == 1.7
    assert contract["input"]["shape"] == ["N", size, size, 3]
    assert contract["preprocessing"]["crop"]["mode"] == "centre"
    assert contract["bytes"] == (folder / "model.onnx").stat().st_size


def test_matrix_pool_is_adaptive_average_pooling() -> None:
    x = torch.randn(2, 3, 5, 7)
    for out_hw in ((7, 7), (3, 2), (5, 7), (1, 1)):
        pool = onnx_bundle.MatrixPool((5, 7), out_hw)
        expected = torch.nn.functional.adaptive_avg_pool2d(x, out_hw)
        torch.testing.assert_close(pool(x), expected)


def save_ensemble(out: Path, name: str, members: list[str], method: str, **meta) -> None:
    folder = out / "submissions" / "pbc" / name
    folder.mkdir(parents=True)
    base = {"member": name, "kind": "ensemble", "method": method, "members": members,
            "weights": [0.3, 0.7], "classes": list(CLASSES),
            "calibration": {"method": "temperature", "temperature": 0.6}}  # fmt: skip
    (folder / "meta.json").write_text(json.dumps(base | meta))


@pytest.mark.parametrize("method", ["soft", "vote", "stack"])
def test_an_ensemble_exports_as_one_graph(tmp_path: Path, method: str) -> None:
    members = [fake_trained_member(tmp_path, "resnet18", seed=0, temperature=1.3),
               fake_trained_member(tmp_path, "squeezenet1_1", seed=0)]  # fmt: skip
    extra = {}
    if method == "stack":  # a stacker that never saw two of the classes
        rng = np.random.default_rng(0)
        model = LogisticRegression(max_iter=500).fit(rng.random((60, 16)), rng.integers(0, 6, 60))
        stack_file = tmp_path / "stack.joblib"
        joblib.dump({"model": model, "members": members, "classes": list(CLASSES)}, stack_file)
        extra = {"stack_model": str(stack_file)}
    save_ensemble(tmp_path, f"ens-{method}", members, method, **extra)
    folder = onnx_bundle.export(tmp_path, f"ens-{method}", "ensemble")
    ensemble = load_ensemble(tmp_path, f"ens-{method}", device="cpu")
    images = sample_images(ensemble.members[0])
    probs = [member_probs(m, images) for m in ensemble.members]
    np.testing.assert_allclose(onnx_probs(folder, images), ensemble.combine(probs), atol=TOLERANCE)
    np.testing.assert_allclose(
        onnx_probs(folder, images, "probs_raw"), ensemble.combine(probs, False), atol=TOLERANCE
    )
    contract = json.loads((folder / "model.json").read_text())
    assert contract["members"] == members and contract["temperature"] == 0.6


def test_an_ensemble_of_different_inputs_is_refused(tmp_path: Path, capsys) -> None:
    members = [fake_trained_member(tmp_path, "squeezenet1_1", 32),
               fake_trained_member(tmp_path, "squeezenet1_1", 48, seed=1)]  # fmt: skip
    save_ensemble(tmp_path, "ens-mixed", members, "soft")
    assert export_cli.main(["--ensemble", "ens-mixed", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "squeezenet1_1-fast-s1: 48 px" in err and "--member" in err
    assert not (tmp_path / "zoo" / "export").exists()
    assert export_cli.main(["--member", "nobody", "--out", str(tmp_path)]) == 2


def test_an_ensemble_method_without_a_graph_is_refused() -> None:
    """A method whose predict_proba is not a weighted mean, a vote or a stacker would be
    exported as a weighted mean, silently wrong: it is refused instead."""

    class Geometric(EnsembleMethod):
        method = "geometric"

        def predict_proba(self, probs):
            mixed = np.exp(np.mean(np.log(probs), axis=0))
            return mixed / mixed.sum(axis=1, keepdims=True)

    probs = [np.full((4, 3), 1 / 3)] * 2
    y = np.array([0, 1, 2, 0])
    meta = EnsembleMeta(name="ens", classes=("a", "b", "c"), members=("m1", "m2"))
    with pytest.raises(ValueError, match="no graph for 'geometric'"):
        onnx_bundle.EnsembleGraph(LoadedEnsemble("ens", meta, [], Geometric().fit(probs, y)))
    greedy = GreedyEnsemble(3).fit(probs, y)  # a weighted mean: exported as one
    assert onnx_bundle.EnsembleGraph(LoadedEnsemble("ens", meta, [], greedy)).method == "greedy"


def stain_normalised_member(out: Path, seed: int = 0, method: str = "reinhard") -> str:
    """A member trained (so its meta.json says) on cells mapped onto their own Reinhard stain."""
    name = fake_trained_member(out, "resnet18", seed=seed)
    cells = np.stack([decode(p, 32)[0] for p in sample_files(per_class=1)])
    ref = fit_reference(method, cells, np.arange(len(cells)), seed)
    meta_file = out / "submissions" / "pbc" / name / "meta.json"
    meta = json.loads(meta_file.read_text()) | {"stain_norm": ref.to_dict()}
    meta_file.write_text(json.dumps(meta))
    return name


def test_a_stain_normalised_member_ships_its_stain_step(tmp_path: Path) -> None:
    """The bundle's stain.py, then the graph, give predict's probabilities; the graph alone
    would not (the stain matters on these cells)."""
    name = stain_normalised_member(tmp_path)
    folder = onnx_bundle.export(tmp_path, name, "member")
    member = load_member(tmp_path, name, device="cpu")
    contract = json.loads((folder / "model.json").read_text())
    step = contract["preprocessing"]["stain_norm"]
    assert step["method"] == "reinhard" and step["in_graph"] is False
    assert step["module"] == "stain.py" and step["values"] == list(member.stain.values)
    source = (folder / "stain.py").read_text()
    assert "pipeline" not in source.split('"""', 2)[2]  # no import of the pipeline: it ships alone
    spec = importlib.util.spec_from_file_location("shipped_stain", folder / "stain.py")
    stain = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stain)

    images = sample_images(member)
    expected = member_probs(member, images)
    prepared = stain.normalise_all(images, step["method"], step["values"])
    np.testing.assert_allclose(onnx_probs(folder, prepared), expected, atol=TOLERANCE)
    assert np.abs(onnx_probs(folder, images) - expected).max() > 10 * TOLERANCE


def test_an_ensemble_of_different_stains_is_refused(tmp_path: Path) -> None:
    members = [stain_normalised_member(tmp_path, seed=0),
               fake_trained_member(tmp_path, "squeezenet1_1")]  # fmt: skip
    save_ensemble(tmp_path, "ens-stains", members, "soft")
    with pytest.raises(ValueError, match="resnet18-fast-s0: 32 px, centre crop, reinhard stain"):
        onnx_bundle.export(tmp_path, "ens-stains", "ensemble")
