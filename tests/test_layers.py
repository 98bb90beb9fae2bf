"""The import layers of ``pipeline/`` (docs/ARCHITECTURE.md): no library module imports command
code, no command imports another, no library package imports one on a higher layer or another
package of its own layer, nothing imports the app, the top layer, and ``bench/`` stays above
them all. Imports are read with ``ast``, lazy ones included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pipeline.commands import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipeline"
APPS = ("bench",)  # the benchmarks, above the faces
COMMAND_CODE = "pipeline.commands"
APP_CODE = "pipeline.app"  # the Streamlit app: wbczoo-board finds its script by path
FACE_LINES = 8  # a ``python -m`` face imports its command's main and runs it, nothing more

# The library's packages, bottom first, and the app above them all; "pipeline" is the root's own
# modules. A module may import its own package and any package on a lower layer: training,
# ensembling and ranking are siblings, so what two of them share (a member's recipe, its
# fingerprint) lives below them.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("pipeline",),
    ("pipeline.data", "pipeline.models", "pipeline.executors"),
    ("pipeline.runs",),
    ("pipeline.evaluation",),
    ("pipeline.training", "pipeline.ensembling", "pipeline.ranking"),
    ("pipeline.inference",),
    ("pipeline.adapted", "pipeline.auditing"),
    (APP_CODE,),
)


def top_of(module: str) -> str:
    return module.partition(".")[0]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    module_name(p): p for top in ("pipeline", *APPS) for p in sorted((ROOT / top).rglob("*.py"))
}
FACES = set(COMMANDS)
LIBRARY = sorted(
    m
    for m in MODULES
    if top_of(m) == "pipeline" and m not in FACES and not m.startswith(COMMAND_CODE)
)


def imports(module: str) -> set[str]:
    """The modules (or packages) of ``pipeline``, the app and bench that a module imports."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            found |= {
                f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names
            }
    return {m for m in found if top_of(m) in ("pipeline", *APPS)}


def package_of(module: str) -> str:
    """The package a module belongs to: ``pipeline.<folder>``, or ``pipeline`` for the root's."""
    parts = module.split(".")
    if len(parts) > 1 and (PIPELINE / parts[1]).is_dir():
        return ".".join(parts[:2])
    return "pipeline"


def layer_of(package: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if package in layer)


def test_every_library_package_has_a_layer() -> None:
    declared = {p for layer in LAYERS for p in layer}
    assert {package_of(m) for m in LIBRARY} == declared


def inside(package: str, modules: set[str]) -> set[str]:
    return {m for m in modules if m == package or m.startswith(f"{package}.")}


def test_no_library_module_imports_command_code() -> None:
    for module in LIBRARY:
        assert not inside(COMMAND_CODE, imports(module)) | (imports(module) & FACES), module


def test_nothing_imports_the_app() -> None:
    for module in set(MODULES) - inside(APP_CODE, set(MODULES)):
        assert not inside(APP_CODE, imports(module)), module


def test_no_command_imports_another_command() -> None:
    commands = set(COMMANDS.values())
    assert all(c.startswith(f"{COMMAND_CODE}.") for c in commands)
    for module in commands:
        assert not imports(module) & ((commands | FACES) - {module}), module


def test_faces_only_run_their_command() -> None:
    for face, command in COMMANDS.items():
        lines = MODULES[face].read_text(encoding="utf-8").splitlines()
        assert len(lines) <= FACE_LINES, face
        assert imports(face) == {command}, face


@pytest.mark.parametrize("module", LIBRARY)
def test_library_imports_only_its_own_package_and_lower_layers(module: str) -> None:
    package = package_of(module)
    for target in imports(module):
        other = package_of(target)
        if other != package:
            assert layer_of(other) < layer_of(package), f"{module} imports {target}"


def test_nothing_in_pipeline_imports_bench() -> None:
    for module in (m for m in MODULES if top_of(m) == "pipeline"):
        assert not {top_of(m) for m in imports(module)} & set(APPS), module


@pytest.mark.parametrize("module", sorted(m for m in MODULES if top_of(m) in APPS))
def test_bench_imports_no_command_code(module: str) -> None:
    """A benchmark of a command runs it as users do (``python -m``), not through its code."""
    assert not inside(COMMAND_CODE, imports(module)) | (imports(module) & FACES), module
