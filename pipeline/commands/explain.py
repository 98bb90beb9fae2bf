"""``python -m pipeline.explain``: Grad-CAM overlays and embedding maps of a zoo member."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from pipeline.classes import ordered  # noqa: E402
from pipeline.commands import options as opts  # noqa: E402
from pipeline.data.cache import decode  # noqa: E402
from pipeline.errors import user_errors  # noqa: E402
from pipeline.evaluation.answers import AnswerKeys  # noqa: E402
from pipeline.evaluation.scoring import mistakes  # noqa: E402
from pipeline.inference.embedding import tsne_map  # noqa: E402
from pipeline.inference.features import penultimate  # noqa: E402
from pipeline.inference.gradcam import cam_layer, grad_cam  # noqa: E402
from pipeline.inference.load import LoadedMember, load_member, member_input  # noqa: E402
from pipeline.io import atomic_write, write_text  # noqa: E402
from pipeline.models.factory import get_module  # noqa: E402
from pipeline.names import plain_name
from pipeline.runs.layout import Layout  # noqa: E402
from pipeline.runs.submissions import read_submission  # noqa: E402

DISPLAY = 160  # pixels per panel: members often train at 64 px, too small to see granules


def to_batch(member: LoadedMember, images: list[np.ndarray]) -> torch.Tensor:
    pixels = member_input(member, np.stack(images))
    return member.precision.to_input(torch.from_numpy(pixels).permute(0, 3, 1, 2))


def save_figure(fig: plt.Figure, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buf.getvalue()), binary=True)


def confident_mistakes(member: LoadedMember, out: Path, set_name: str, n: int) -> list[dict]:
    """The member's most confident mistakes on a set, from its own submission file."""
    source = member.meta.sets[set_name]
    keys = AnswerKeys()
    answers = keys.answers(source)
    sub = read_submission(Layout(out).submission(member.dataset, member.name) / f"{set_name}.csv")
    wrong = mistakes(sub.ids, sub.probs, sub.classes, answers)
    wrong.sort(key=lambda m: -m.confidence)
    return [{"path": Path(source["root"]) / m.id, "id": m.id, "true": m.true} for m in wrong[:n]]


def gradcam_figure(member: LoadedMember, items: list[dict], layer: str, title: str) -> plt.Figure:
    size = member.image_size
    inputs = to_batch(member, [decode(it["path"], size, member.crop)[0] for it in items])
    cams, logits = grad_cam(member.model, get_module(member.model, layer), inputs)
    probs = torch.softmax(logits.float(), 1)
    cols = min(6, len(items))
    rows = -(-len(items) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.7 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, it, cam, p in zip(axes.flat, items, cams, probs, strict=False):
        shown = F.interpolate(cam[None, None], size=(DISPLAY, DISPLAY), mode="bilinear")[0, 0]
        ax.imshow(decode(it["path"], DISPLAY, member.crop)[0])
        ax.imshow(shown.cpu().numpy(), cmap="jet", alpha=0.4, vmin=0, vmax=1)
        predicted = member.classes[int(p.argmax())]
        label = f"{it['true']} → {predicted}" if it.get("true") else predicted
        ax.set_title(f"{label}\n{float(p.max()):.2f}  {Path(it['id']).name}", fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


def run_gradcam(args: argparse.Namespace, member: LoadedMember, folder: Path) -> None:
    if args.images:
        items = [{"path": p, "id": str(p)} for p in args.images]
        what = "chosen images"
    else:
        items = confident_mistakes(member, args.out, args.mistakes_on, args.n)
        what = f"most confident mistakes on {args.mistakes_on}"
        if not items:
            print(f"{member.name} makes no mistake on {args.mistakes_on}: nothing to show")
            return
    path = folder / f"gradcam-{args.mistakes_on if not args.images else 'images'}.png"
    layer = args.layer or cam_layer(member.entry)
    title = f"Grad-CAM of {member.name} (layer {layer}): {what}"
    save_figure(gradcam_figure(member, items, layer, title), path)
    print(f"Grad-CAM of {len(items)} image(s): {path}")


def run_tsne(args: argparse.Namespace, member: LoadedMember, folder: Path) -> None:
    sets = args.sets.split(",") if args.sets else [s for s in member.meta.sets if s != "val"]
    rng = np.random.default_rng(args.seed)
    keys = AnswerKeys()
    rows, feats = [], []
    for set_name in sets:
        if set_name not in member.meta.sets:
            raise SystemExit(
                f"{member.name} has no set {set_name!r}: {', '.join(member.meta.sets)}"
            )
        source = member.meta.sets[set_name]
        key = keys.key(source)
        ids = sorted(key)
        ids = [ids[i] for i in sorted(rng.choice(len(ids), min(args.per_set, len(ids)), False))]
        images = [decode(Path(source["root"]) / i, member.image_size, member.crop)[0] for i in ids]
        batches = [to_batch(member, images[s : s + 64]) for s in range(0, len(images), 64)]
        feats.append(penultimate(member.model, member.entry, batches))
        rows += [{"set": set_name, "id": i, "label": key[i]} for i in ids]
    table = pd.DataFrame(rows)
    table[["x", "y"]] = tsne_map(np.concatenate(feats), args.seed)
    write_text(folder / "tsne.csv", table.to_csv(index=False))
    fig, ax = plt.subplots(figsize=(8, 7))
    markers = "o^sDvP*X"
    colours = plt.get_cmap("tab10")
    for si, set_name in enumerate(sets):
        for ci, label in enumerate(ordered(table["label"].unique())):
            part = table[(table["set"] == set_name) & (table["label"] == label)]
            if len(part):
                ax.scatter(part["x"], part["y"], s=14, marker=markers[si % len(markers)],
                           color=colours(ci % 10), alpha=0.7,
                           label=f"{label} ({set_name})")  # fmt: skip
    ax.set_title(f"t-SNE of {member.name}'s penultimate features; colour: class, marker: set")
    ax.legend(fontsize=6, markerscale=1.2, ncol=2, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    save_figure(fig, folder / "tsne.png")
    print(f"t-SNE of {len(table)} images from {', '.join(sets)}: {folder / 'tsne.png'}, tsne.csv")


def build_parser() -> argparse.ArgumentParser:
    p = opts.command_parser(
        "python -m pipeline.explain",
        "Grad-CAM overlays and t-SNE embedding maps of a trained member. Pictures go "
        "to OUT/zoo/explain/<dataset>/<member>/.",
    )
    opts.option(p, "--member", required=True)
    opts.add_out(p)
    opts.add_tag(p)
    opts.add_device(p)
    sub = p.add_subparsers(dest="what", required=True)
    g = sub.add_parser("gradcam", help="Grad-CAM overlays of chosen or misclassified images")
    on = g.add_argument(
        "--mistakes-on", default="test", metavar="SET", help="set whose mistakes are shown"
    )
    opts.renamed(g, "--set", on)
    g.add_argument("-n", type=int, default=12, help="how many mistakes")
    g.add_argument("--images", nargs="+", type=Path, help="explain these files instead")
    g.add_argument(
        "--layer",
        help="module path to explain (default: the family's last block, see gradcam.CAM_LAYERS); "
        "an earlier one gives finer maps for small inputs, e.g. layer3 at 64 px",
    )
    t = sub.add_parser("tsne", help="t-SNE map of penultimate features over several sets")
    t.add_argument("--sets", help="comma-separated sets of the member (default: all but val)")
    opts.option(t, "--per-set", type=int, default=300)
    opts.option(t, "--seed", type=int, default=0, help="seed of the images drawn")
    opts.add_debug(p)
    return p


@user_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    asked = (
        [args.mistakes_on] if args.what == "gradcam" else args.sets.split(",") if args.sets else []
    )
    for set_name in asked:  # gradcam-<set>.png
        plain_name(set_name, "set name")
    member = load_member(args.out, args.member, args.tag, args.device)
    folder = Layout(args.out).explanations(member.dataset, member.name)
    (run_gradcam if args.what == "gradcam" else run_tsne)(args, member, folder)
    return 0
