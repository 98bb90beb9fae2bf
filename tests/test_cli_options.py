"""The commands agree: one meaning per flag name, shared parsers, old spellings kept for a
release, a table of every command and flag (docs/commands.md), and recipes checked before any
work (no command importing another: tests/test_layers.py)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pytest

from pipeline.commands import COMMANDS, build_parser, tune, zoo
from pipeline.commands.options import SHARED, parse_eval, parse_seeds, split_names
from pipeline.errors import UserError
from pipeline.runs.layout import default_out

ROOT = Path(__file__).resolve().parents[1]


def actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """Every option of a parser and of its subcommands, old spellings left out."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += actions(sub)
        elif action.option_strings and action.help != argparse.SUPPRESS:
            found.append(action)
    return found


def flags(command: str) -> list[str]:
    return [f for a in actions(build_parser(command)) for f in a.option_strings if f != "-h"]


def test_a_flag_name_means_one_thing_in_every_command() -> None:
    users: dict[str, dict[str, str | None]] = {}
    for command in COMMANDS:
        for action in actions(build_parser(command)):
            for flag in action.option_strings:
                users.setdefault(flag, {})[command] = getattr(action, SHARED, None)
    users.pop("-h"), users.pop("--help")
    shared = {f: u for f, u in users.items() if len(u) > 1}
    assert {"--out", "--dataset", "--eval", "--member", "--seed", "--image-size"} <= set(shared)
    for flag, by_command in shared.items():  # added by the one shared adder, in every command
        assert set(by_command.values()) == {flag}, (flag, by_command)
    for old in ("--workers", "--also", "--size", "--zoo-out"):  # renamed wherever it was
        assert old not in users
    assert "--seeds" in users and set(users["--seeds"]) == {"pipeline.zoo"}


def test_out_is_the_zoo_root_wherever_it_is_taken() -> None:
    takes_out = [c for c in COMMANDS if "--out" in flags(c)]
    assert set(COMMANDS) - set(takes_out) == {"pipeline.cropsheet"}  # it reads no zoo


def parsed(command: str, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[dict, str]:
    args = build_parser(command).parse_args(argv)
    return vars(args), capsys.readouterr().err


MEMBER = ["--member", "m"]
RENAMED = [  # (command, the old spelling, the new, arguments both need)
    ("pipeline.zoo", ["--workers", "2"], ["--loader-workers", "2"], []),
    ("pipeline.tune", ["--member", "resnet18"], ["--arch", "resnet18"], []),
    ("pipeline.tune", ["--workers", "3"], ["--trial-workers", "3"], ["--arch", "resnet18"]),
    ("pipeline.ensemble", ["--seeds", "pool"], ["--pool-seeds"], []),
    ("pipeline.ensemble", ["--seeds", "apart"], [], []),
    ("pipeline.ensemble", ["--dataset", "pbc"], ["--tag", "pbc"], []),
    ("pipeline.leaderboard", ["--dataset", "pbc"], ["--tag", "pbc"], []),
    ("pipeline.predict", ["--dataset", "pbc"], ["--tag", "pbc"], [*MEMBER, "x.png"]),
    ("pipeline.explain", ["--dataset", "pbc"], ["--tag", "pbc"], [*MEMBER, "tsne"]),
    ("pipeline.calibrate", ["--dataset", "pbc"], ["--tag", "pbc"], []),
    ("pipeline.export", ["--dataset", "pbc"], ["--tag", "pbc"], MEMBER),
    ("pipeline.adapt", ["--dataset", "pbc"], ["--tag", "pbc"], ["--members", "m"]),
    ("pipeline.audit", ["--also", "b=/b", "--also", "c=/c"], ["--eval", "b=/b", "--eval", "c=/c"],
     ["--data", "d"]),
    ("pipeline.audit", ["--size", "32"], ["--image-size", "32"], ["--data", "d"]),
    ("pipeline.audit", ["--workers", "2"], ["--decode-workers", "2"], ["--data", "d"]),
    ("pipeline.audit", ["--top", "5"], ["--outliers", "5"], ["--data", "d"]),
    ("pipeline.cropsheet", ["--out", "s.png"], ["--png", "s.png"], ["a=/a"]),
]  # fmt: skip


@pytest.mark.parametrize(("command", "old", "new", "common"), RENAMED)
def test_old_spellings_work_with_a_one_line_warning(command, old, new, common, capsys) -> None:
    with_old, warning = parsed(command, [*old, *common], capsys)
    with_new, quiet = parsed(command, [*new, *common], capsys)
    assert with_old == with_new
    assert quiet == ""
    lines = warning.splitlines()
    assert len(lines) == old.count(old[0])  # once per use, one line each
    assert re.fullmatch(rf"warning: {old[0]} is deprecated .*; use {new[0] if new else ''}.*",
                        lines[0])  # fmt: skip


def test_explain_set_became_mistakes_on(capsys) -> None:
    old, warning = parsed("pipeline.explain", [*MEMBER, "gradcam", "--set", "val"], capsys)
    new, _ = parsed("pipeline.explain", [*MEMBER, "gradcam", "--mistakes-on", "val"], capsys)
    assert old == new and "use --mistakes-on" in warning


def test_audit_keeps_zoo_out_and_its_report_folder(tmp_path, capsys) -> None:
    old, warning = parsed("pipeline.audit", ["--data", "d", "--zoo-out", "z"], capsys)
    assert old["zoo_out"] == Path("z") and old["out"] == default_out() and "use --out" in warning
    new, _ = parsed("pipeline.audit", ["--data", "d", "--out", "z"], capsys)
    assert new["zoo_out"] is None and new["out"] == Path("z")


def test_shared_value_parsers() -> None:
    assert split_names(" a, b,,c ,") == ["a", "b", "c"]
    assert parse_seeds("2,0-1") == [2, 0, 1]
    assert parse_eval(["b=/b", "l=lisc:/l"]) == {"b": ("folder", Path("/b")),
                                                  "l": ("lisc", Path("/l"))}  # fmt: skip
    with pytest.raises(UserError, match="--also a is given twice"):
        parse_eval(["a=/x", "a=/y"], "--also")


def readme_commands() -> dict[str, str]:
    """The rows of the table of commands (docs/commands.md): command -> its row."""
    text = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    section = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `python -m ([\w.]+)[^`]*` \|(.*)$", section, re.MULTILINE)
    return dict(rows)


def test_readme_lists_every_command_and_its_flags() -> None:
    rows = readme_commands()
    assert set(rows) == set(COMMANDS)
    for command, row in rows.items():
        listed = set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", row))
        assert listed == set(flags(command)) - {"--help"}, command


@pytest.mark.parametrize(
    ("main", "argv"),
    [
        (zoo.main, ["--models", "resnet18"]),
        (tune.main, ["--arch", "resnet18"]),
    ],
)
@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ("augment=hflip,nosuchaug", "unknown augmentation(s) nosuchaug"),
        ("lr_max=1", "unknown recipe field 'lr_max'"),
        ("epochs=0", "epochs must be at least 1"),
    ],
)
def test_a_bad_recipe_field_fails_before_any_work(
    main, argv, bad, fragment, tmp_path, monkeypatch, capsys
) -> None:
    def no_data(*_: object) -> None:
        raise AssertionError("data loaded before the recipe was checked")

    no_data.cache_clear = no_data

    monkeypatch.setattr(zoo, "load_data", no_data)
    monkeypatch.setattr(tune, "load_data", no_data)
    out = tmp_path / "out"
    code = main([*argv, "--set", bad, "--out", str(out), "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and fragment in err, err
    assert not out.exists() and not (tmp_path / "c").exists()


@pytest.mark.trains
def test_without_out_a_run_writes_into_runs_and_the_app_reads_it(tiny, tmp_path, monkeypatch):
    """The checkout keeps only what it ships: a run without --out writes under ``runs/`` of the
    working folder (``WBCZOO_OUT`` moves it), and the app looks there too."""
    from pipeline.app.sidebar import out_folder
    from pipeline.commands import zoo

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("WBCZOO_OUT", raising=False)
    monkeypatch.setattr(sys, "argv", ["app.py"])
    cache = str(tmp_path / "cache")
    args = ["--dataset", "folder", "--data", str(tiny), "--models", "squeezenet1_1",
            "--weights", "none", "--recipe", "fast", "--epochs", "1", "--image-size", "32",
            "--batch-size", "8", "--cache-dir", cache, "--no-progress"]  # fmt: skip
    assert zoo.main(args) == 0
    assert sorted(p.name for p in work.iterdir()) == ["runs"]
    assert (work / "runs" / "submissions" / "cells" / "squeezenet1_1-fast+30968e-s0").is_dir()
    assert out_folder() == (Path("runs"), False)
    monkeypatch.setenv("WBCZOO_OUT", str(tmp_path / "elsewhere"))
    assert out_folder() == (tmp_path / "elsewhere", True)
    assert default_out() == tmp_path / "elsewhere"
