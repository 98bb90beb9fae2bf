"""The audit: load the datasets, then hash, measure and score every image once."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.auditing.hashing import FileInfo, inspect_file, near_pairs, perceptual_hashes
from pipeline.auditing.member_features import member_features
from pipeline.auditing.outliers import FEATURE_NAMES, class_distances, image_features
from pipeline.data import Dataset, load_dataset
from pipeline.data.cache import DEFAULT_CACHE_DIR, load_or_build

TRAINING_SETS = frozenset({"train", "val"})  # what a model learns from or is selected on
CHUNK = 512


@dataclass(frozen=True)
class AuditConfig:
    """What to audit and how."""

    adapter: str
    data: Path
    extra: dict[str, tuple[str, Path]] = field(default_factory=dict)  # name -> (adapter, root)
    hash_distance: int = 12
    size: int = 64
    cache_dir: Path = DEFAULT_CACHE_DIR
    workers: int | None = None
    progress: bool = True
    member: str | None = None  # outlier features from this zoo member, else colour/texture
    zoo_out: Path = Path(".")  # the zoo's --out, where the member lives


@dataclass(frozen=True)
class Item:
    """One image: ``set`` is its split, or the name of an extra dataset."""

    dataset: str
    set: str
    id: str
    label: str
    root: Path

    @property
    def path(self) -> Path:
        return self.root / self.id


@dataclass(frozen=True)
class Pair:
    """Two images that are the same file (``exact``) or look alike (``near``: perceptual hashes)."""

    a: int
    b: int
    kind: str
    distance: int
    leak: bool


@dataclass(frozen=True)
class Unreadable:
    """A file that no model sees: skipped by the adapter, or failing to decode."""

    dataset: str
    id: str
    reason: str


@dataclass
class AuditResult:
    """Everything the report is made of; arrays are indexed like ``items``."""

    config: AuditConfig
    name: str
    roots: dict[str, Path]
    items: list[Item]
    pairs: list[Pair]
    scores: np.ndarray  # distance from the class centre; NaN where not scored
    deviations: np.ndarray  # per feature, in class standard deviations
    feature_names: list[str]  # the columns of ``deviations``
    unreadable: list[Unreadable]
    sizes: dict[str, Counter[tuple[int, int]]]
    seconds: float

    @property
    def leaks(self) -> list[Pair]:
        return [p for p in self.pairs if p.leak]

    def outliers(self, k: int) -> list[int]:
        """Indices of the ``k`` highest-scoring items, highest first."""
        scored = np.flatnonzero(~np.isnan(self.scores))
        return [int(i) for i in scored[np.argsort(-self.scores[scored], kind="stable")][:k]]


def split_rank(split: str) -> tuple[int, str]:
    """Order splits train, val, test, then any others by name."""
    order = ("train", "val", "test")
    return (order.index(split) if split in order else len(order), split)


def is_leak(a: Item, b: Item) -> bool:
    """A pair leaks when it spans two sets and one of them is trained on or selected on."""
    return a.set != b.set and (a.set in TRAINING_SETS or b.set in TRAINING_SETS)


def load(config: AuditConfig) -> dict[str, Dataset]:
    """The audited dataset first, then the extra datasets, by the names the report uses."""
    main = load_dataset(config.adapter, config.data)
    taken = {main.name, *main.splits}
    clash = sorted(taken & set(config.extra))
    if clash:
        raise ValueError(f"extra set name(s) {clash} clash with the dataset or its splits {taken}")
    return {main.name: main} | {n: load_dataset(a, p) for n, (a, p) in config.extra.items()}


def list_items(datasets: dict[str, Dataset]) -> list[Item]:
    """The audited dataset's images split by split (train, val, test, ...), then the extras'."""
    (name, main), *extras = datasets.items()
    items = [
        Item(name, split, r.id, r.label, main.root)
        for split in sorted(main.splits, key=split_rank)
        for r in main.splits[split]
    ]
    for extra, ds in extras:
        items += [Item(extra, extra, r.id, r.label, ds.root) for r in ds.records()]
    return items


@dataclass
class Measurements:
    """Hashes and features of the decodable items; ``failed`` maps the others to why."""

    hashes: np.ndarray  # (N, 2) uint64
    features: np.ndarray  # (N, F)
    failed: dict[int, str]

    @property
    def readable(self) -> np.ndarray:
        mask = np.ones(len(self.hashes), dtype=bool)
        mask[list(self.failed)] = False
        return mask


def measure(datasets: dict[str, Dataset], items: list[Item], config: AuditConfig) -> Measurements:
    """Hash and measure every image from the decode-once cache (built here if missing)."""
    out = Measurements(
        np.zeros((len(items), 2), dtype=np.uint64), np.zeros((len(items), len(FEATURE_NAMES))), {}
    )
    for name, ds in datasets.items():
        # all of the dataset's ids, as the zoo registers them, so both share one cache
        ids = [r.id for r in ds.records()]
        cache = load_or_build(
            ds.root, ids, config.size, ds.name, config.cache_dir, config.workers, config.progress
        )
        members = [n for n, it in enumerate(items) if it.dataset == name]
        out.failed |= {n: cache.failed[items[n].id] for n in members if items[n].id in cache.failed}
        ok = np.array([n for n in members if n not in out.failed], dtype=np.int64)
        rows = cache.rows([items[n].id for n in ok])
        bar = tqdm(
            total=len(ok),
            desc=f"measure {name}",
            unit="img",
            disable=None if config.progress else True,
        )
        for start in range(0, len(ok), CHUNK):
            block = np.asarray(cache.images[rows[start : start + CHUNK]])
            out.hashes[ok[start : start + CHUNK]] = perceptual_hashes(block)
            out.features[ok[start : start + CHUNK]] = image_features(block)
            bar.update(len(block))
        bar.close()
    return out


def audit(config: AuditConfig) -> AuditResult:
    """Run every check; nothing is written here."""
    started = time.perf_counter()
    datasets = load(config)
    name = next(iter(datasets))
    items = list_items(datasets)
    infos = [
        inspect_file(it.path)
        for it in tqdm(
            items, desc="hash files", unit="file", disable=None if config.progress else True
        )
    ]
    m = measure(datasets, items, config)
    unreadable = [
        Unreadable(n, rel, f"skipped by the adapter: {_skipped_reason(ds.root / rel)}")
        for n, ds in datasets.items()
        for rel in ds.skipped
    ]
    unreadable += [
        Unreadable(items[n].dataset, items[n].id, infos[n].error or why)
        for n, why in m.failed.items()
    ]
    readable = m.readable
    pairs = find_pairs(items, infos, m.hashes, readable, config.hash_distance)
    scored = readable & np.array([it.dataset == name for it in items])
    features, feature_names = m.features, list(FEATURE_NAMES)
    if config.member:
        ids = [items[n].id for n in np.flatnonzero(scored)]
        chosen = member_features(
            config.member, config.zoo_out, datasets[name], ids, config.cache_dir,
            config.workers, config.progress,
        )  # fmt: skip
        features = np.zeros((len(items), chosen.shape[1]))
        features[scored] = chosen
        feature_names = [f"feature {i}" for i in range(chosen.shape[1])]
    scores = np.full(len(items), np.nan)
    deviations = np.zeros_like(features)
    labels = np.array([it.label for it in items])
    if scored.any():
        scores[scored], deviations[scored] = class_distances(features[scored], labels[scored])
    sizes: dict[str, Counter[tuple[int, int]]] = {n: Counter() for n in datasets}
    for it, info in zip(items, infos, strict=True):
        if info.size is not None:
            sizes[it.dataset][info.size] += 1
    return AuditResult(
        config,
        name,
        {n: ds.root for n, ds in datasets.items()},
        items,
        pairs,
        scores,
        deviations,
        feature_names,
        unreadable,
        sizes,
        time.perf_counter() - started,
    )


def find_pairs(
    items: list[Item],
    infos: list[FileInfo],
    hashes: np.ndarray,
    readable: np.ndarray,
    max_distance: int,
) -> list[Pair]:
    """Exact pairs (same SHA-1) and near pairs (perceptual hashes at most ``max_distance`` bits
    apart), leaks first."""
    by_digest: dict[str, list[int]] = defaultdict(list)
    for n, info in enumerate(infos):
        by_digest[info.sha1].append(n)
    exact = {ab for group in by_digest.values() for ab in combinations(group, 2)}
    pairs = [Pair(a, b, "exact", 0, is_leak(items[a], items[b])) for a, b in exact]
    among = np.flatnonzero(readable)
    for i, j, d in near_pairs(hashes[among], max_distance):
        a, b = int(among[i]), int(among[j])
        if (a, b) not in exact:
            pairs.append(Pair(a, b, "near", int(d), is_leak(items[a], items[b])))

    def order(p: Pair) -> tuple[bool, bool, int, str, str]:
        return (
            not p.leak,
            p.kind != "exact",
            p.distance,
            items[p.a].path.as_posix(),
            items[p.b].path.as_posix(),
        )

    return sorted(pairs, key=order)


def _skipped_reason(path: Path) -> str:
    """Say what a file the adapter passed over really is."""
    info = inspect_file(path)
    if info.size is None:
        return info.error or "unreadable"
    return f"a readable {info.size[0]}×{info.size[1]} image, passed over for its name"
