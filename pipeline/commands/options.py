"""The options several commands share: one meaning per flag name, one parser per kind of value.

A shared flag is added through :func:`option`, which takes its one meaning from ``MEANINGS``
(a command may word its help more closely, never give the flag another meaning);
``tests/test_cli_options.py`` checks that no flag name is used by two commands otherwise.
A renamed flag keeps its old spelling for one release through :func:`renamed`.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pipeline.commands.helpformat import HelpFormatter
from pipeline.data import list_adapters
from pipeline.data.cache import DEFAULT_CACHE_DIR
from pipeline.data.registry import is_adapter
from pipeline.errors import UnknownNameError, UserError, add_debug_flag
from pipeline.executors.options import add_executor_args
from pipeline.inference.adaptation import Adaptation, parse_adaptations
from pipeline.names import plain_name
from pipeline.resources import shipped
from pipeline.runs.layout import default_out
from pipeline.runs.recipe import Recipe
from pipeline.runs.tracking import add_tracking_args
from pipeline.training.jobs import DataSpec
from pipeline.training.recipes import RECIPES, get_recipe, override

SHARED = "shared_meaning"  # the attribute that marks an action added here

# Every flag that more than one command takes, and what it means in all of them.
MEANINGS = {
    "--out": "the zoo's output root: members in OUT/zoo/members/, submissions in OUT/submissions/ "
    "(default: $WBCZOO_OUT, else runs/)",
    "--dataset": "dataset adapter of --data",
    "--data": "dataset folder, or .npz file",
    "--eval": "extra evaluation set, e.g. bccd=/data/bccd (a <class>/<image> folder) or "
    "lisc=lisc:/data/LISC (any adapter); repeatable",
    "--tag": "the zoo's dataset tag, its folder under OUT/submissions/ (the training dataset's "
    "name, e.g. pbc), where the zoo holds several",
    "--cache-dir": "decoded-image cache (env WBCZOO_CACHE)",
    "--device": "auto, cpu, cuda or cuda:N",
    "--no-progress": "no progress bars",
    "--member": "a trained member, e.g. resnet18-fast-s0",
    "--members": "comma-separated trained members, e.g. resnet18-fast-s0,vgg16-fast-s0",
    "--ensemble": "a saved ensemble, e.g. ens-soft-top4",
    "--arch": "an architecture of the catalogue, e.g. resnet18 (python -m pipeline.zoo --list)",
    "--seed": "random seed",
    "--recipe": f"training recipe: {', '.join(RECIPES)}, or a .json file written by pipeline.tune",
    "--set": "override any recipe field, e.g. --set scheduler=cosine (repeatable)",
    "--epochs": "training epochs",
    "--image-size": "input size in pixels",
    "--batch-size": "training batch size",
    "--lr": "learning rate",
    "--weights": "initial weights: imagenet, none (random init), auto (per member: imagenet "
    "where cached, packaged or downloadable, else random init), or a FILE: a backbone of "
    "pipeline.pretrain, or any state dict of the members' architecture (.pth, .safetensors)",
    "--adapt": "test-time adaptation: adabn, tent, shot, tta, lame, em, bbse, or a combination "
    "joined by + (adabn+shot+tta+em), applied in that order",
    "--per-set": "images drawn from each set",
    "--reference": "a reference zoo's name, its folder under zoo/reference/ (e.g. pbc-fast64)",
    "--debug": "show the traceback of an error in the input too",
}


def command_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A command's parser, in the help style every command shares."""
    return argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=HelpFormatter
    )


def option(p: Any, flag: str, **kwargs: Any) -> argparse.Action:
    """Add a shared flag (to a parser or group); ``help`` defaults to its one meaning."""
    kwargs.setdefault("help", MEANINGS[flag])
    action = p.add_argument(flag, **kwargs)
    setattr(action, SHARED, flag)
    return action


def marked(p: argparse.ArgumentParser, add: Callable[[], None]) -> None:
    """Run an adder of shared flags defined elsewhere and mark what it added."""
    before = set(map(id, p._actions))
    add()
    for action in p._actions:
        if id(action) not in before:
            setattr(action, SHARED, action.option_strings[0])


class _Renamed(argparse.Action):
    """An old spelling: does what the new one does, with a one-line warning on stderr."""

    def __init__(
        self,
        option_strings: list[str],
        dest: str,
        new: str,
        convert: Callable[[Any], Any] | None = None,
        append: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)
        self.new, self.convert, self.append = new, convert, append

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        print(
            f"warning: {option_string} is deprecated and will be removed in the next "
            f"release; use {self.new}",
            file=sys.stderr,
        )
        value = self.convert(values) if self.convert else values
        if self.append:  # a repeatable option: the old spelling adds to the same list
            value = [*(getattr(namespace, self.dest, None) or []), value]
        setattr(namespace, self.dest, value)


def renamed(
    p: Any,
    old: str,
    new: argparse.Action,
    convert: Callable[[Any], Any] | None = None,
    dest: str | None = None,
    **kwargs: Any,
) -> None:
    """Keep ``old`` working as a deprecated spelling of the option ``new`` (into ``dest``, where
    the old option is to be told apart from the new)."""
    if convert is None:
        kwargs.setdefault("type", new.type)
        kwargs.setdefault("metavar", new.metavar)
    p.add_argument(
        old,
        action=_Renamed,
        dest=dest or new.dest,
        new=new.option_strings[0],
        convert=convert,
        append=isinstance(new, argparse._AppendAction),
        **kwargs,
    )


def add_out(p: argparse.ArgumentParser, help: str | None = None) -> argparse.Action:
    return option(
        p,
        "--out",
        type=Path,
        default=default_out(),
        metavar="DIR",
        **({"help": help} if help else {}),
    )


def add_data(p: argparse.ArgumentParser, required: bool = False, help: str | None = None) -> None:
    """``--dataset ADAPTER`` and ``--data PATH`` (without it: the bundled PBC sample)."""
    option(p, "--dataset", default="pbc", choices=list_adapters())
    default = " (default: the bundled PBC sample)" if not required else ""
    option(
        p,
        "--data",
        type=Path,
        required=required,
        metavar="PATH",
        help=help or MEANINGS["--data"] + default,
    )


def add_eval(p: argparse.ArgumentParser, help: str | None = None) -> argparse.Action:
    return option(
        p,
        "--eval",
        action="append",
        default=[],
        metavar="NAME=[ADAPTER:]PATH",
        **({"help": help} if help else {}),
    )


def add_tag(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--tag``, once ``--dataset`` in the commands that read an existing zoo."""
    new = option(p, "--tag", **({"help": help} if help else {}))
    renamed(p, "--dataset", new)


def add_cache_dir(p: argparse.ArgumentParser) -> None:
    option(p, "--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, metavar="DIR")


def add_device(p: argparse.ArgumentParser) -> None:
    option(p, "--device", default="auto")


def add_no_progress(p: argparse.ArgumentParser) -> None:
    option(p, "--no-progress", action="store_true")


def add_debug(p: argparse.ArgumentParser) -> None:
    marked(p, lambda: add_debug_flag(p))


def add_executor(p: argparse.ArgumentParser, what: str = "member") -> None:
    marked(p, lambda: add_executor_args(p, what))


def add_tracking(p: argparse.ArgumentParser) -> None:
    marked(p, lambda: add_tracking_args(p))


def add_recipe(p: argparse.ArgumentParser, default: str, fields: Iterable[str]) -> None:
    """``--recipe``, ``--set FIELD=VALUE`` and the overrides of the given recipe fields."""
    option(p, "--recipe", help=MEANINGS["--recipe"] + f" (default: {default})")
    kinds = {"epochs": int, "image_size": int, "batch_size": int, "lr": float}
    for field in fields:
        flag = "--" + field.replace("_", "-")
        option(p, flag, type=kinds[field], help=f"{MEANINGS[flag]} (default: the recipe's)")
    option(p, "--set", action="append", default=[], metavar="FIELD=VALUE")


def recipe_from_options(
    args: argparse.Namespace, default: str, changes: dict | None = None
) -> Recipe:
    """The recipe the options name (``default`` without ``--recipe``) with ``changes`` and the
    command line's overrides, every field checked here, before any work."""
    changes = dict(changes or {})
    for spec in args.set:
        key, sep, value = spec.partition("=")
        if not sep:
            raise UserError(f"--set takes FIELD=VALUE, got {spec!r}")
        changes[key] = value
    for field in ("epochs", "image_size", "batch_size", "lr"):
        value = getattr(args, field, None)
        if value is not None:
            changes[field] = value
    return override(get_recipe(args.recipe or default), changes)


def split_names(text: str | None) -> list[str]:
    """``a, b,,c`` -> ``[a, b, c]``: a comma list, blanks dropped."""
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def parse_seeds(text: str, option: str = "--seeds") -> list[int]:
    """``0-9``, ``0,3,5-7``: seeds in the order given, each once."""
    seeds: list[int] = []
    for part in split_names(text):
        first, dash, last = part.partition("-")
        try:
            span = range(int(first), int(last) + 1) if dash else [int(part)]
        except ValueError:
            raise UserError(
                f"{option} takes numbers and ranges like 0-9,12, got {part!r}"
            ) from None
        if dash and not span:
            raise UserError(f"{option} range {part!r} is empty (write low-high)")
        seeds += [s for s in span if s not in seeds]
    if not seeds:
        raise UserError(f"{option} needs at least one seed")
    return seeds


def parse_source(spec: str, option: str = "--eval") -> tuple[str, str, Path]:
    """``NAME=[ADAPTER:]PATH`` -> (name, adapter, path); without a known adapter prefix the path
    is a ``folder`` (so ``NAME=PATH`` keeps its meaning, and ``C:\\data`` stays a path)."""
    name, sep, rest = spec.partition("=")
    if not sep or not name or not rest:
        raise UserError(f"{option} takes NAME=[ADAPTER:]PATH, got {spec!r}")
    plain_name(name, f"{option} name")  # the set's submission file is <NAME>.csv
    adapter, colon, path = rest.partition(":")
    if colon and is_adapter(adapter) and path:
        return name, adapter, Path(path)
    # ``nosuch:/p``: a misspelt adapter, unless the whole is a path (``C:\data``, ``a:b/``)
    if colon and re.fullmatch(r"[A-Za-z][\w-]+", adapter) and not Path(rest).exists():
        raise UnknownNameError(
            f"{option} {spec}: unknown dataset adapter {adapter!r}; known: "
            f"{', '.join(list_adapters())}"
        )
    return name, "folder", Path(rest)


def parse_eval(specs: list[str], option: str = "--eval") -> dict[str, tuple[str, Path]]:
    """Repeated ``NAME=[ADAPTER:]PATH`` options as name -> (adapter, path)."""
    sets: dict[str, tuple[str, Path]] = {}
    for spec in specs:
        name, adapter, path = parse_source(spec, option)
        if name in sets:
            raise UserError(f"{option} {name} is given twice")
        sets[name] = (adapter, path)
    return sets


def data_spec(args: argparse.Namespace, evals: list[str] | None = None) -> DataSpec:
    """The data ``--dataset``/``--data`` (and ``--eval``) name; without ``--data``, the bundled
    PBC sample, tagged ``pbc-sample``. Paths are absolute: Ray and Slurm workers start in other
    folders, on other machines."""
    preset = args.data is None
    if preset and args.dataset != "pbc":
        raise UserError(f"--dataset {args.dataset} needs --data PATH")
    root = shipped("data", "pbc-sample") if preset else args.data
    return DataSpec(
        args.dataset,
        root.resolve(),
        args.cache_dir.resolve(),
        "pbc-sample" if preset else None,
        tuple(
            (name, adapter, path.resolve())
            for name, (adapter, path) in parse_eval(evals or []).items()
        ),
        not args.no_progress,
    )


def parse_adapt(text: str, option: str = "--adapt") -> list[Adaptation]:
    """``adabn,tent+tta``: the adaptations named, checked before any work."""
    try:
        return parse_adaptations(text)
    except ValueError as exc:
        raise UserError(f"{option}: {exc}") from None
