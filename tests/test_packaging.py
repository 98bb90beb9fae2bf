"""The project installs with pip, and its console commands run the ``python -m`` commands."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from pipeline.commands import COMMANDS
from pipeline.commands import wbczoo as entry

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def run_wbczoo(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from pipeline.commands.wbczoo import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_wbczoo_help_lists_every_python_m_command() -> None:
    done = run_wbczoo("--help")
    assert done.returncode == 0, done.stderr
    listed = {line.strip() for line in done.stdout.splitlines() if line.startswith("  ")}
    assert listed == {command.removeprefix("pipeline.") for command in COMMANDS}
    assert "zoo" in listed and "cropsheet" in listed


def test_wbczoo_runs_a_command_in_a_fresh_process_without_warnings() -> None:
    done = run_wbczoo("calibrate", "--help")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith("usage: python -m pipeline.calibrate")


def test_wbczoo_without_a_known_command_says_so_with_exit_2() -> None:
    unknown = run_wbczoo("zooo", "--all")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: unknown command 'zooo'; one of: zoo, tune")
    bare = run_wbczoo()
    assert bare.returncode == 2 and "usage: wbczoo COMMAND" in bare.stderr


# In this process other tests have imported pipeline.zoo already, which runpy warns about; a
# console command imports no command before it runs one (checked in a fresh process below).
ALREADY_IMPORTED = pytest.mark.filterwarnings("ignore:'pipeline.zoo' found in sys.modules")


@pytest.fixture(autouse=True)
def own_argv(monkeypatch) -> None:
    """``wbczoo`` sets ``sys.argv`` for the command it runs, as a console script must; in this
    process that would leak into later tests (the app reads ``--out`` from it)."""
    monkeypatch.setattr(sys, "argv", list(sys.argv))


@ALREADY_IMPORTED
def test_wbczoo_command_runs_its_module_with_the_remaining_arguments(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        entry.main(["zoo", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m pipeline.zoo") and "--fetch-weights" in out


@ALREADY_IMPORTED
def test_wbczoo_passes_on_the_command_exit_code_and_error(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        entry.main(["zoo", "--models", "nosucharch", "--out", str(out)])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.startswith("error: ") and not out.exists()


def test_wbczoo_board_runs_streamlit_on_the_app_kept_on_this_machine(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(entry, "wait_for", lambda cmd, env: calls.append((cmd, env)) or 0)
    monkeypatch.delenv("STREAMLIT_SERVER_ADDRESS", raising=False)
    assert entry.board(["--server.port", "8600", "--", "--out", "runs"]) == 0
    command, env = calls[0]
    assert command[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert Path(command[4]) == ROOT / "pipeline" / "app" / "scripts" / "wbczoo_board.py"
    assert command[5:] == ["--server.port", "8600", "--", "--out", "runs"]
    assert env["STREAMLIT_SERVER_ADDRESS"] == "127.0.0.1"
    monkeypatch.setenv("STREAMLIT_SERVER_ADDRESS", "0.0.0.0")
    entry.board([])
    assert calls[1][1]["STREAMLIT_SERVER_ADDRESS"] == "0.0.0.0"


def test_wbczoo_board_returns_the_exit_code_of_what_it_ran() -> None:
    assert entry.wait_for([sys.executable, "-c", "import sys; sys.exit(3)"], env={}) == 3


def test_the_console_scripts_name_functions_that_exist() -> None:
    scripts = PYPROJECT["project"]["scripts"]
    assert set(scripts) == {"wbczoo", "wbczoo-board"}
    for target in scripts.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), target


def test_the_dependencies_are_the_requirements_file() -> None:
    assert "dependencies" in PYPROJECT["project"]["dynamic"]
    files = PYPROJECT["tool"]["setuptools"]["dynamic"]["dependencies"]["file"]
    assert files == ["requirements.txt"]
    pins = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert all(line.startswith("#") or "==" in line for line in pins if line.strip())


def copy_sources(source: Path, files: Sequence[str] = ()) -> Path:
    """What a build of the project reads (its code, and ``files`` of the checkout), copied to
    ``source`` so that building leaves the checkout as it was."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    source.mkdir()
    for name in ("pyproject.toml", "requirements.txt", "README.md", *files):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "pipeline", source / "pipeline", ignore=ignore)
    return source


def venv_with_these_packages(env_dir: Path) -> Path:
    """A fresh venv that sees the running environment's packages (a venv's own, not its base
    interpreter's, which ``system_site_packages`` would give); returns its python."""
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    ours = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    (Path(purelib) / "running-environment.pth").write_text("\n".join(ours) + "\n")
    return python


def test_the_build_backend_is_the_one_installed_for_the_tests() -> None:
    """pyproject's SPDX ``license`` needs setuptools 77; requirements-dev.txt installs it, so
    the editable-install test below runs (never skips) wherever the README's command ran."""
    requires = PYPROJECT["build-system"]["requires"]
    assert requires == ["setuptools>=77"]
    dev = (ROOT / "requirements-dev.txt").read_text(encoding="utf-8").splitlines()
    pinned = [line for line in dev if line.startswith("setuptools==")]
    assert pinned and int(pinned[0].removeprefix("setuptools==").split(".")[0]) >= 77
    import setuptools

    assert int(setuptools.__version__.split(".")[0]) >= 77


def test_pip_install_editable_into_a_fresh_venv(tmp_path) -> None:
    """Offline and quick: no dependencies fetched (the venv sees this environment's packages,
    its build backend included, whether the tests run in a venv or in the base interpreter)."""
    source = copy_sources(tmp_path / "src")
    env_dir = tmp_path / "venv"
    python = venv_with_these_packages(env_dir)
    install = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    done = subprocess.run([*install, "-e", source], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    where = "import importlib.util as u; print(u.find_spec('pipeline').origin);"
    where += "print(u.find_spec('leaderboard'))"  # the app is pipeline.app, no package of its own
    found = subprocess.run([python, "-c", where], cwd=tmp_path, capture_output=True, text=True)
    assert found.stdout.split() == [str(source / "pipeline" / "__init__.py"), "None"], found.stderr
    helped = subprocess.run([env_dir / "bin" / "wbczoo", "--help"], cwd=tmp_path, text=True,
                            capture_output=True, timeout=120)  # fmt: skip
    assert helped.returncode == 0 and "  zoo\n" in helped.stdout, helped.stderr
    assert (env_dir / "bin" / "wbczoo-board").exists()


def shipped_files() -> list[str]:
    """What the checkout ships beside its code: the tracked files of zoo/ and data/."""
    listed = subprocess.run(["git", "ls-files", "zoo", "data"], cwd=ROOT, capture_output=True,
                            text=True, check=True)  # fmt: skip
    return listed.stdout.split()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel (``pip wheel .``), built once for the tests that install it."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = copy_sources(tmp / "src", shipped_files())
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    done = subprocess.run([*build, "-w", tmp / "wheels", source], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (built,) = (tmp / "wheels").glob("*.whl")
    return built


def test_the_wheel_installs_and_runs_from_another_folder(tmp_path, wheel: Path) -> None:
    """``pip install .`` (a wheel, not editable) into a fresh venv: every package and every
    shipped file is in it, and a command run from another folder finds the catalogue, the
    bundled sample and the reference zoos through ``pipeline.resources``."""
    files = shipped_files()
    assert wheel.name.startswith("wbczoo-")  # what users pip install, as timm or torchvision
    with zipfile.ZipFile(wheel) as archive:
        inside = set(archive.namelist())
    modules = [p.relative_to(ROOT).as_posix() for p in (ROOT / "pipeline").rglob("*.py")]
    assert [m for m in modules if m not in inside] == []
    tops = {n.split("/")[0] for n in inside}
    assert {t for t in tops if not t.endswith((".dist-info", ".data"))} == {"pipeline"}
    data = next(n for n in inside if ".data/data/share/wbczoo/" in n).split("share/wbczoo/")[0]
    assert [f for f in files if f"{data}share/wbczoo/{f}" not in inside] == []

    python = venv_with_these_packages(tmp_path / "venv")
    install = [python, "-m", "pip", "install", "-q", "--no-deps", wheel]
    done = subprocess.run(install, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([python, *args], cwd=elsewhere, capture_output=True, text=True,
                              timeout=300)  # fmt: skip

    where = run(
        "-c", "import pipeline, pipeline.resources as r; print(pipeline.__file__, r.root())"
    )
    package, root = where.stdout.split()
    assert package.startswith(str(tmp_path / "venv")) and "site-packages" in package
    assert Path(root) == tmp_path / "venv" / "share" / "wbczoo", where.stderr
    smoke = run("-m", "pipeline.zoo", "--models", "squeezenet1_1", "--weights", "none",
                "--epochs", "1", "--image-size", "32", "--batch-size", "16", "--no-progress",
                "--cache-dir", str(tmp_path / "cache"))  # fmt: skip
    assert smoke.returncode == 0, smoke.stderr
    assert "bundled PBC sample" in smoke.stdout
    assert (elsewhere / "runs" / "submissions" / "pbc-sample").is_dir()
    board = run("-m", "pipeline.leaderboard", "--reference", "pbc-fast64", "--format", "csv")
    assert board.returncode == 0 and "resnet18-fast" in board.stdout, board.stderr
    app = run("-c", INSTALLED_APP)
    assert app.returncode == 0, app.stderr
    script, first = app.stdout.splitlines()[-2:]
    assert script.startswith(str(tmp_path / "venv")) and first.startswith("squeezenet1_1")


def test_the_wheel_installed_under_another_base_finds_its_data_files(tmp_path, wheel: Path) -> None:
    """``pip install --prefix`` (as ``--user``) puts the data files under a base that is not
    ``sys.prefix``: ``pipeline.resources`` finds them through the distribution's record, and
    says where it looked when they are gone, as a command's one-line error."""
    prefix = tmp_path / "prefix"
    # --ignore-installed: a wbczoo installed in this environment stays as it is.
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed",
               "--no-warn-script-location", "--prefix", prefix, wheel]  # fmt: skip
    done = subprocess.run(install, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    site_packages = next(prefix.rglob("pipeline/resources.py")).parents[1]
    # This install's code, no checkout's; and no user base of this machine's to fall back on.
    env = {**os.environ, "PYTHONPATH": str(site_packages), "PYTHONUSERBASE": str(tmp_path)}
    check = "import pipeline.resources as r; print(r.root(), r.shipped(*r.MARKER).is_file())"

    def run_check() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", check], cwd=prefix, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    data = prefix / "share" / "wbczoo"
    found = run_check()
    assert found.stdout.split() == [str(data), "True"], found.stderr
    shutil.rmtree(data)
    lost = run_check()
    assert lost.returncode == 1 and str(data) in lost.stderr and "reinstall wbczoo" in lost.stderr
    # a command says it in one line, exit 2: nothing looks for the files on import
    command = subprocess.run([sys.executable, "-m", "pipeline.zoo", "--list"], cwd=prefix, env=env,
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert command.returncode == 2, command.stderr
    assert command.stderr.startswith("error: the pipeline's shipped files")
    assert len(command.stderr.strip().splitlines()) == 1 and "reinstall wbczoo" in command.stderr


# What wbczoo-board runs, as AppTest runs it, on the zoo just trained (``--out runs``): its first
# page ranks the member, and its other pages run too.
INSTALLED_APP = """
import sys
from streamlit.testing.v1 import AppTest
from pipeline.commands.wbczoo import board_app
sys.argv = ["app", "--out", "runs"]
at = AppTest.from_file(str(board_app()), default_timeout=120).run()
names = at.dataframe[0].value["name"].tolist()
for page in ("page_details.py", "page_competition.py"):
    at.switch_page(page).run()
    assert not at.exception, [e.message for e in at.exception]
print(board_app())
print(names[0])
"""
