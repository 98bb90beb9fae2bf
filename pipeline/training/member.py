"""Fine-tune one member: resumable training, best checkpoint, history, metrics, submissions."""

from __future__ import annotations

import random
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from pipeline.data.augment import build_augment
from pipeline.data.cache import CENTRE_CROP
from pipeline.data.cellcrop import CropSpec
from pipeline.data.loader import CachedImages, make_loader
from pipeline.data.overlap import describe_shared, set_files, shared_images
from pipeline.data.stain import StainReference, fit_reference
from pipeline.data.store import ImageSet, ImageStore, View
from pipeline.evaluation import calibration
from pipeline.evaluation.answers import ids_fingerprint
from pipeline.evaluation.metrics import evaluate
from pipeline.evaluation.predictions import EVAL_BATCH, predict_view
from pipeline.evaluation.scoring import AnswerKey, score
from pipeline.io import atomic_write, read_json, write_json, write_text
from pipeline.models import Architecture, count_gmacs, count_params, create_model, engine
from pipeline.models import weights as weights_api
from pipeline.models.backbone_file import describe_backbone, file_sha256
from pipeline.models.mixstyle import add_mixstyle
from pipeline.models.variants import freeze_batchnorm
from pipeline.names import member_name
from pipeline.runs import provenance
from pipeline.runs.checkpoint import WEIGHTS_FILE, find_weights, load_weights, save_weights
from pipeline.runs.entry import EntryWriter
from pipeline.runs.layout import HISTORY_FILE, METRICS_FILE, EntryFiles, Layout
from pipeline.runs.metadata import MemberMeta
from pipeline.runs.recipe import Recipe, fingerprint, stored_recipe
from pipeline.training.balance import WeightedCrossEntropy, balanced_sampler, class_weights
from pipeline.training.gpu_augment import GpuAugment, split_augment
from pipeline.training.mixing import Mixer
from pipeline.training.optim import make_optimizer, make_scheduler


@dataclass(frozen=True)
class MemberConfig:
    arch: Architecture  # the catalogue's architecture (an "entry" is a leaderboard row)
    recipe: Recipe
    seed: int
    weights: str  # as asked for: imagenet | none | auto
    dataset: str  # the tag that names the training data in output paths
    device: str = "auto"
    workers: int | None = None  # data-loader workers; None: 0 on CPU, up to 8 on a GPU
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    gpu_augment: str = "auto"  # auto | on | off: geometric augmentation on the device
    compile: bool = False  # torch.compile the model
    deterministic: bool = False  # cuDNN without autotuning, for exactly repeatable runs

    @property
    def member_id(self) -> str:
        return member_name(self.arch.name, self.recipe.name, self.seed)

    @property
    def image_size(self) -> int:
        return self.arch.image_size(self.recipe.image_size)


@dataclass(frozen=True)
class MemberPaths:
    root: Path  # the member's folder: checkpoints, history, metrics
    submissions: Path  # its submission files and metadata

    @classmethod
    def of(cls, out: Path, cfg: MemberConfig) -> MemberPaths:
        return cls(
            Layout(out).member(cfg.dataset, cfg.member_id),
            Layout(out).submission(cfg.dataset, cfg.member_id),
        )

    last = property(lambda self: self.root / "last.pt")
    best = property(lambda self: self.root / WEIGHTS_FILE)
    history = property(lambda self: self.root / HISTORY_FILE)
    metrics = property(lambda self: self.root / METRICS_FILE)
    state = property(lambda self: self.root / "state.json")
    error = property(lambda self: self.root / "error.txt")
    meta = property(lambda self: EntryFiles(self.submissions).meta)


def is_done(paths: MemberPaths) -> bool:
    return paths.state.exists() and read_json(paths.state).get("status") == "done"


def epoch_seed(seed: int, epoch: int) -> int:
    """Data order, augmentation and dropout of an epoch depend on (seed, epoch) alone, so a
    resumed run repeats exactly what an uninterrupted one would have done."""
    return seed * 100_003 + epoch


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def save_torch(path: Path, obj: object) -> None:
    # streamed to the file: a buffer would double the model and optimiser state in memory
    atomic_write(path, lambda f: torch.save(obj, f), binary=True)


def train_member(
    cfg: MemberConfig,
    sets: dict[str, ImageSet],
    classes: tuple[str, ...],
    store: ImageStore,
    out: Path,
    force: bool = False,
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
) -> dict:
    """Train (or resume, or skip when done) one member and write all its outputs.

    ``on_epoch`` sees each epoch's history row once it is saved (the tuner prunes from it).
    """
    paths = MemberPaths.of(out, cfg)
    # refused before anything is written where e.g. an upload took this member's name
    entry = EntryWriter.open(out, cfg.dataset, cfg.member_id, MemberMeta.kind, classes)
    settings = member_settings(cfg, sets, classes)
    if is_done(paths) and not force:
        check_same_settings(read_json(paths.meta), settings, cfg, paths, "trained")
        done = {"recipe": cfg.recipe.name, "seed": cfg.seed, **read_json(paths.metrics)["summary"]}
        return {**done, "status": "skipped (done)"}
    resume = None
    if paths.last.exists() and not force:  # checked before this run touches any file
        resume = torch.load(paths.last, map_location="cpu", weights_only=False)
        check_same_settings(resume.get("settings", {}), settings, cfg, paths, "partly trained")
    if force:
        shutil.rmtree(paths.root, ignore_errors=True)
        shutil.rmtree(paths.submissions, ignore_errors=True)
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.error.unlink(missing_ok=True)
    write_json(paths.state, {"status": "running"})

    run = set_up(cfg, sets, classes, store, paths, settings)
    if resume is not None:
        run.resume_from(resume)
    run_epochs(run, progress, on_epoch)
    return finalise(run, entry)


@dataclass
class Training:
    """One member's training as set up: what the epoch loop advances and finalisation reads."""

    cfg: MemberConfig
    sets: dict[str, ImageSet]
    classes: tuple[str, ...]
    store: ImageStore
    paths: MemberPaths
    settings: dict
    runtime: engine.Runtime
    workers: int
    model: nn.Module  # plain state_dict keys, for checkpoints
    net: nn.Module  # what computes: the model, or its compiled wrapper
    weights_used: str
    params: int
    gmacs: float
    stain: StainReference | None
    train_data: CachedImages
    train_labels: np.ndarray
    drop_last: bool
    device_augment: tuple[str, ...]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    val_view: View
    val_labels: np.ndarray
    backbone: dict  # what a pretrained backbone file adds to meta.json (backbone_meta)
    start: int = 0
    history: list[dict] = field(default_factory=list)
    best_score: float = -1.0
    train_time: float = 0.0

    @property
    def size(self) -> int:
        return self.cfg.image_size

    @property
    def crop(self) -> CropSpec:
        return self.cfg.recipe.crop_spec

    def resume_from(self, state: dict) -> None:
        if "optimizer" in state:  # absent after the last epoch: only evaluation is left
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
        # no random state to restore: every epoch reseeds from (seed, epoch) before it starts
        self.start, self.history = state["epoch"] + 1, state["history"]
        self.best_score, self.train_time = state["best_score"], state["train_time"]


def set_up(
    cfg: MemberConfig,
    sets: dict[str, ImageSet],
    classes: tuple[str, ...],
    store: ImageStore,
    paths: MemberPaths,
    settings: dict,
) -> Training:
    """The model, data views, optimiser and loss of a member, before its first epoch."""
    device = engine.resolve_device(cfg.device)
    runtime = engine.Runtime(
        device,
        engine.amp_dtype(device, cfg.precision),
        cfg.recipe.channels_last,
        cfg.arch.mean,
        cfg.arch.std,
    )
    engine.configure_backends(device, cfg.deterministic)
    workers = cfg.workers if cfg.workers is not None else (0 if device.type == "cpu" else 8)
    size, recipe = cfg.image_size, cfg.recipe

    seed_all(cfg.seed)
    model, weights_used = create_model(
        cfg.arch,
        len(classes),
        weights=cfg.weights,
        image_size=size,
        head_dropout=recipe.head_dropout,
        head_hidden=recipe.head_hidden,
    )
    if recipe.batchnorm == "frozen":  # in training only: the saved weights load as plain BN
        freeze_batchnorm(model)
    if recipe.mixstyle:  # no parameters: checkpoints and predictions are the plain member's
        add_mixstyle(model, cfg.arch.family, cfg.arch.name)
    params, gmacs = count_params(model), count_gmacs(model, size)
    memory_format = torch.channels_last if recipe.channels_last else torch.preserve_format
    model = model.to(device, memory_format=memory_format)
    net = model
    if cfg.compile:
        net = engine.FixedBatch(torch.compile(model, dynamic=False), EVAL_BATCH)

    crop = recipe.crop_spec
    train_view = store.view(sets["train"], size, crop)
    stain = None
    if recipe.stain_norm != "none":  # the reference is the training split's own stain
        stain = fit_reference(recipe.stain_norm, train_view.images, train_view.rows, cfg.seed)
        train_view = store.view(sets["train"], size, crop, stain)
    train_labels = label_indices(train_view, classes)
    cpu_augment, device_augment = split_augment(recipe.augment, cfg.gpu_augment, device)
    train_data = CachedImages(
        train_view.images,
        train_view.rows,
        train_labels,
        build_augment(cpu_augment, size, cfg.seed, recipe.aug_strength) if cpu_augment else None,
    )
    drop_last = len(train_data) > recipe.batch_size  # a batch of one breaks BatchNorm
    steps = len(train_data) // recipe.batch_size if drop_last else 1
    optimizer = make_optimizer(model, recipe)
    weight = None
    if recipe.class_weights != "none":
        w = class_weights(train_labels, len(classes), recipe.class_weights, recipe.effective_beta)
        weight = torch.as_tensor(w, dtype=torch.float32, device=device)
    val_view = store.view(sets["val"], size, crop, stain)
    return Training(
        cfg=cfg,
        sets=sets,
        classes=classes,
        store=store,
        paths=paths,
        settings=settings,
        runtime=runtime,
        workers=workers,
        model=model,
        net=net,
        weights_used=weights_used,
        params=params,
        gmacs=gmacs,
        stain=stain,
        train_data=train_data,
        train_labels=train_labels,
        drop_last=drop_last,
        device_augment=tuple(device_augment),
        optimizer=optimizer,
        scheduler=make_scheduler(optimizer, recipe, steps),
        scaler=torch.amp.GradScaler(device.type, enabled=runtime.dtype == torch.float16),
        criterion=WeightedCrossEntropy(weight, recipe.label_smoothing),
        val_view=val_view,
        val_labels=label_indices(val_view, classes),
        backbone=backbone_meta(weights_used, cfg.weights, sets, cfg.member_id),
    )


def run_epochs(
    run: Training, progress: bool = True, on_epoch: Callable[[dict], None] | None = None
) -> None:
    """Every epoch left: train, score on validation, keep the best weights, save the state
    that a killed run resumes from."""
    cfg, recipe, paths = run.cfg, run.cfg.recipe, run.paths
    for epoch in range(run.start, recipe.epochs):
        t0 = time.perf_counter()
        seed = epoch_seed(cfg.seed, epoch)
        seed_all(seed)
        sampler = balanced_sampler(run.train_labels, seed) if recipe.sampler == "balanced" else None
        loader = make_loader(
            run.train_data,
            recipe.batch_size,
            shuffle=True,
            workers=run.workers,
            seed=seed,
            pin_memory=run.runtime.device.type == "cuda",
            drop_last=run.drop_last,
            sampler=sampler,
        )
        n_classes = len(run.classes)
        mixer = Mixer(n_classes, recipe.mixup_alpha, recipe.cutmix_alpha, recipe.mix_prob, seed)
        bar = tqdm(
            total=len(loader) * recipe.batch_size if run.drop_last else len(run.train_data),
            desc=f"{cfg.member_id} {epoch + 1}/{recipe.epochs}",
            unit="img",
            leave=False,
            disable=None if progress else True,  # None: off when stderr is no terminal (a log)
        )
        stats = engine.train_one_epoch(
            run.net,
            loader,
            optimizer=run.optimizer,
            scheduler=run.scheduler,
            scaler=run.scaler,
            criterion=run.criterion,
            precision=run.runtime,
            aux_weight=cfg.arch.aux_weight,
            progress=bar,
            mixer=mixer if mixer.active else None,
            augment=GpuAugment(run.device_augment, seed) if run.device_augment else None,
        )
        bar.close()
        val_probs = predict_view(run.net, run.val_view, run.runtime, run.workers)
        val_scores = evaluate(run.val_labels, val_probs, run.classes, auc=False)
        run.train_time += time.perf_counter() - t0
        run.history.append(
            {
                "epoch": epoch + 1,
                **stats,
                "val_acc": val_scores["accuracy"],
                "val_macro_f1": val_scores["macro_f1"],
                "lr": run.optimizer.param_groups[0]["lr"],
                "time_s": round(time.perf_counter() - t0, 2),
            }
        )
        selected = val_scores[recipe.select_metric]
        if selected > run.best_score:
            run.best_score = selected
            save_weights(paths.best, run.model, epoch + 1)
        progress_state = {
            "settings": run.settings,
            "epoch": epoch,
            "history": run.history,
            "best_score": run.best_score,
            "train_time": run.train_time,
        }
        if epoch < recipe.epochs - 1:  # after the last epoch, evaluation needs the best alone
            progress_state |= {
                "model": run.model.state_dict(),
                "optimizer": run.optimizer.state_dict(),
                "scheduler": run.scheduler.state_dict(),
                "scaler": run.scaler.state_dict(),
            }
        save_torch(paths.last, progress_state)
        history_csv = pd.DataFrame(run.history).to_csv(index=False, lineterminator="\n")
        write_text(paths.history, history_csv)
        if on_epoch is not None:
            on_epoch(run.history[-1])


def finalise(run: Training, entry: EntryWriter) -> dict:
    """The best epoch's submissions (raw and calibrated), metrics and ``meta.json``; the
    member is done once this returns its summary."""
    cfg, recipe, paths, sets = run.cfg, run.cfg.recipe, run.paths, run.sets
    # evaluation needs the weights alone: the gradients and the optimiser's moments (three times
    # the weights under AdamW) go before the best epoch's weights are loaded beside them
    run.optimizer.zero_grad(set_to_none=True)
    run.optimizer.state.clear()
    # a run resumed from an earlier version may hold its best epoch in the old format
    best_state, best_epoch = load_weights(find_weights(paths.root) or paths.best)
    run.model.load_state_dict(best_state)
    metrics = evaluate_sets(
        run.net,
        sets,
        run.classes,
        run.store,
        size=run.size,
        precision=run.runtime,
        workers=run.workers,
        entry=entry,
        crop=run.crop,
        stain=run.stain,
    )
    calib = calibration.calibrate_entry(
        entry,
        lambda name: AnswerKey({r.id: r.label for r in sets[name].records}, sets[name].vocabulary),
    )
    metrics = calib.merge(metrics)
    summary = {
        "member": cfg.member_id,
        "arch": cfg.arch.name,
        "recipe": recipe.name,
        "seed": cfg.seed,
        "val_acc": metrics["val"]["accuracy"],
        "test_acc": metrics["test"]["accuracy"],
        "test_macro_f1": metrics["test"]["macro_f1"],
        **cross_domain_summary(metrics),
        **calib.summary(),
        "best_epoch": best_epoch,
        "weights": run.weights_used,
        "train_time_s": round(run.train_time, 1),
    }
    meta = member_meta(run, metrics, calib.meta, best_epoch)
    entry.finish(meta, paths.metrics, {"summary": summary, "sets": metrics})
    paths.last.unlink(missing_ok=True)  # only needed to resume; the best weights are the member
    write_json(paths.state, {"status": "done"})
    return {**summary, "status": "trained"}


def backbone_meta(used: str, requested: str, sets: dict[str, ImageSet], member: str) -> dict:
    """A member started from a pretrained backbone file names it, and is transductive when the
    backbone saw evaluation images: as the file says, or because a folder it was pretrained on
    (``extra``) holds an image of one of this member's sets but train, which pretraining may
    never have been told of (one warning names them)."""
    if used != weights_api.FILE:
        return {}
    backbone = describe_backbone(Path(requested))
    folders = [Path(f) for f in backbone.get("extra") or []]
    if gone := [f for f in folders if not f.is_dir()]:
        warnings.warn(
            f"{member}: --weights {requested} was pretrained on {gone[0]}, which is not here: "
            "its overlap with the evaluation sets is not checked",
            stacklevel=2,
        )
    evaluated = {name: set_files(s) for name, s in sets.items() if name != "train"}
    shared = shared_images([f for f in folders if f.is_dir()], evaluated)
    if shared:
        warnings.warn(
            f"{member}: --weights {requested} was pretrained on images it is scored on "
            f"({describe_shared(shared)}): the member is transductive",
            stacklevel=2,
        )
    return {
        "weights_file": {**backbone, "evaluation_overlap": shared},
        "weights_sha256": backbone["sha256"],
        "transductive": bool(backbone["transductive"]) or bool(shared),
    }


def member_meta(run: Training, metrics: dict, calib: dict, best_epoch: int) -> MemberMeta:
    cfg, recipe, size, runtime = run.cfg, run.cfg.recipe, run.size, run.runtime
    unreadable = set(metrics["test"]["source"].get("unreadable", ()))
    return MemberMeta(
        name=cfg.member_id,
        arch=cfg.arch.name,
        builder=cfg.arch.builder,
        family=cfg.arch.family,
        norm=cfg.arch.norm,
        dataset=cfg.dataset,
        classes=tuple(run.classes),
        seed=cfg.seed,
        recipe=asdict(recipe),
        init=run.weights_used,
        weights_requested=cfg.weights,
        **run.backbone,
        data_fingerprint=run.settings["data_fingerprint"],
        image_size=size,
        normalisation={"mean": list(runtime.mean), "std": list(runtime.std)},
        stain_norm=run.stain.to_dict() if run.stain else None,
        calibration=calib,
        aux_heads=tuple(cfg.arch.aux_heads) if cfg.arch.aux_active(size) else (),
        params=run.params,
        gmacs=round(run.gmacs, 4),
        epochs=recipe.epochs,
        best_epoch=best_epoch,
        train_time_s=round(run.train_time, 1),
        device=provenance.device_name(runtime.device),
        precision=runtime.name,
        augment_on_device=run.device_augment,
        compiled=cfg.compile,
        deterministic=cfg.deterministic,
        versions=provenance.package_versions(),
        git_commit=provenance.git_commit(),
        command=provenance.command_line(),
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        sets={name: m["source"] for name, m in metrics.items()},
        test_set=ids_fingerprint({r.id for r in run.sets["test"].records} - unreadable),
    )


class SettingsMismatch(RuntimeError):
    """A finished or partly trained member of this name was trained with other settings."""


def member_settings(cfg: MemberConfig, sets: dict[str, ImageSet], classes: tuple[str, ...]) -> dict:
    """What a member's training depends on beside its seed, stored in its resume state and its
    ``meta.json``: the resolved recipe, the weights asked for, and a fingerprint of the classes
    and the images and labels of the sets that train it and select its epoch."""
    data = {name: sorted((r.id, r.label) for r in sets[name].records) for name in ("train", "val")}
    settings = {
        "recipe": asdict(cfg.recipe),
        "weights_requested": cfg.weights,
        "data_fingerprint": fingerprint({"classes": list(classes), **data}),
    }
    if weights_api.is_file(cfg.weights):  # a file pretrained anew under the same path differs
        settings["weights_sha256"] = file_sha256(Path(cfg.weights))
    return settings


def check_same_settings(
    stored: dict, asked: dict, cfg: MemberConfig, paths: MemberPaths, state: str
) -> None:
    """Skipping or resuming a member is only right if it was trained the way we are asked to.
    Settings that the version which trained it did not store are not compared."""
    before = {k: stored[k] for k in asked if k in stored}
    if "recipe" in before:
        before["recipe"] = stored_recipe(before["recipe"])
    changes = []
    for key, was in before.items():
        now = asked[key]
        if key == "recipe":
            changes += [f"{k} {was.get(k)!r}, now {v!r}" for k, v in now.items() if was.get(k) != v]
        elif was != now:
            changes.append(f"{key} {was!r}, now {now!r}")
    if changes:
        raise SettingsMismatch(
            f"{cfg.member_id} in {paths.root} was {state} with other settings "
            f"({'; '.join(changes)}); use --force to retrain it from scratch, or another --out"
        )


def label_indices(view: View, classes: tuple[str, ...]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(label, -1) for label in view.labels], dtype=np.int64)


def evaluate_sets(
    model: nn.Module,
    sets: dict[str, ImageSet],
    classes: tuple[str, ...],
    store: ImageStore,
    size: int,
    precision: engine.Runtime,
    workers: int,
    entry: EntryWriter,
    crop: CropSpec = CENTRE_CROP,
    stain: StainReference | None = None,
) -> dict[str, dict]:
    """Write an uncalibrated submission for every set but ``train`` (``raw/<set>.csv``, see
    ``pipeline.evaluation.calibration``) and score it over the shared classes.

    Each set's metrics name the classes it was scored over (``classes``), the classes the set
    holds (``set_classes``), how its crops were made (``crop``: mode and status counts) and
    where its answer key comes from (``source``), less the images that could not be read.
    """
    results = {}
    for name, image_set in sets.items():
        if name == "train":
            continue
        view = store.view(image_set, size, crop, stain)
        probs = predict_view(model, view, precision, workers)
        entry.raw(name, view.ids, probs)
        answers = AnswerKey(dict(zip(view.ids, view.labels, strict=True)), image_set.vocabulary)
        unreadable = sorted({r.id for r in image_set.records} - set(view.ids))
        results[name] = {
            **score(view.ids, probs, classes, answers),
            "set_classes": list(image_set.classes),
            "crop": view.crop,
            "dataset": image_set.dataset,
            "source": image_set.source | ({"unreadable": unreadable} if unreadable else {}),
        }
    return results


def cross_domain_summary(metrics: dict[str, dict]) -> dict[str, float]:
    """Accuracy and balanced accuracy of every set beyond the training data's own splits."""
    out = {}
    for name, m in metrics.items():
        if name not in ("train", "val", "test"):
            out[f"{name}_acc"] = m["accuracy"]
            out[f"{name}_balanced_acc"] = m["balanced_accuracy"]
    return out
