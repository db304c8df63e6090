"""The package's folders are layered in data-flow order: nothing imports upward.

The order (top to bottom) is the one docs/architecture.md draws. Every import
counts, also one inside a function or under TYPE_CHECKING: a lazy import is
still a dependency.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cosmos_workflow"
PLUGINS = PACKAGE.parent / "hydra_plugins"

# Top to bottom; a module may import its own layer and the layers below it.
LAYERS = [
    "cli",
    "ui",
    "api",
    "sweeps",
    "engine",
    "outputs",
    "execution.targets",
    "execution.adapters",
    "execution.programs",
    "database",
    "local_ai",
    "config",
    "transfer",
    "manifest",
    "connection",
    "utils",
    "errors",
    "",  # cosmos_workflow/__init__.py: the version
]
# The Hydra plugins sit beside the CLI: they may use the API and below.
PLUGIN_RANK = LAYERS.index("api")
MAX_LINES = 520
# Shipped as one standard-library file that runs on a host by itself.
LONG_ALLOWED = {"execution/programs/simulated_model.py"}


def layer_of(module: str) -> str:
    """The layer of a dotted module name inside cosmos_workflow ('' for the package)."""
    parts = module.split(".")[1:]
    if not parts or parts == ["__init__"]:
        return ""
    if parts[0] == "execution":
        # The bare package (its __init__) is empty: it sits at the bottom of execution.
        sub = f"execution.{parts[1]}" if len(parts) > 1 else "execution.programs"
        if sub not in LAYERS:
            raise AssertionError(f"{module}: folder {sub!r} has no place in LAYERS")
        return sub
    if parts[0] not in LAYERS:
        if not (PACKAGE / parts[0]).exists() and not (PACKAGE / f"{parts[0]}.py").exists():
            return ""  # a name defined in the package's __init__ (e.g. __version__)
        raise AssertionError(f"{module}: folder {parts[0]!r} has no place in LAYERS")
    return parts[0]


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every cosmos_workflow module that ``path`` imports, with its line."""
    return modules_imported_by(path.read_text(encoding="utf-8"), module_name(path), path.name)


def modules_imported_by(source: str, module: str, file_name: str) -> list[tuple[int, str]]:
    """Every cosmos_workflow module a module's source imports (any form, anywhere in it).

    ``from A import b`` counts as both ``A`` and ``A.b`` (b may be a module).
    """
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if file_name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "cosmos_workflow"]


def sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def upward_imports(path: Path, rank: int) -> list[str]:
    problems = []
    for line, target in imported_modules(path):
        target_rank = LAYERS.index(layer_of(target))
        if target_rank < rank:
            problems.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    return problems


def test_every_folder_has_a_layer() -> None:
    for path in sources():
        layer_of(module_name(path))


def test_nothing_imports_upward() -> None:
    problems = []
    for path in sources():
        rank = LAYERS.index(layer_of(module_name(path)))
        problems += upward_imports(path, rank)
    for path in sorted(PLUGINS.rglob("*.py")):
        problems += upward_imports(path, PLUGIN_RANK)
    assert problems == [], "upward imports:\n" + "\n".join(problems)


PROGRAMS = PACKAGE / "execution" / "programs"
# Programs may import their siblings (shipped beside them): by name when run
# as a script, relatively when imported as part of the package.
SIBLINGS = {path.stem for path in PROGRAMS.glob("*.py")} - {"__init__"}


def test_shipped_programs_import_nothing_of_the_package() -> None:
    """The programs are copied to a host and run with python3 -S: standard library only."""
    problems = [
        f"{path.name}:{line} imports {target}"
        for path in sorted(PROGRAMS.glob("*.py"))
        if path.name != "__init__.py"
        for line, target in imported_modules(path)
        if target not in {f"cosmos_workflow.execution.programs.{name}" for name in SIBLINGS}
        and target != "cosmos_workflow.execution.programs"
    ]
    assert problems == []


def test_shipped_programs_use_the_standard_library_only() -> None:
    problems = []
    for path in sorted(PROGRAMS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            problems += [
                f"{path.name}:{node.lineno} imports {name}"
                for name in names
                if name.split(".")[0] not in sys.stdlib_module_names
                and name.split(".")[0] != "__future__"
                and name not in SIBLINGS
            ]
    assert problems == []


UPWARD_FORMS = {
    "top level": "from cosmos_workflow.api.cosmos_api import CosmosAPI\n",
    "plain import": "import cosmos_workflow.sweeps.plan\n",
    "in a function": "def f():\n    from cosmos_workflow.engine import dispatch\n",
    "under TYPE_CHECKING": "if TYPE_CHECKING:\n    from cosmos_workflow.outputs.store import X\n",
    "package name": "def f():\n    from cosmos_workflow import api\n",
    "relative": "def f():\n    from .. import sweeps\n",
    "relative module": "from ..engine.dispatch import Dispatcher\n",
}


@pytest.mark.parametrize("form", sorted(UPWARD_FORMS))
def test_every_form_of_an_upward_import_is_seen(form: str) -> None:
    """The checker itself: an upward import from database/engine.py in any form is found."""
    found = modules_imported_by(UPWARD_FORMS[form], "cosmos_workflow.database.engine", "engine.py")
    rank = LAYERS.index("database")
    upward = [name for _, name in found if LAYERS.index(layer_of(name)) < rank]
    assert upward, found


def test_a_downward_import_is_not_upward() -> None:
    source = "from cosmos_workflow.utils.clock import Clock\nfrom . import models\n"
    found = modules_imported_by(source, "cosmos_workflow.database.engine", "engine.py")
    rank = LAYERS.index("database")
    assert found
    assert [name for _, name in found if LAYERS.index(layer_of(name)) < rank] == []


def test_no_module_is_a_drawer() -> None:
    """About 500 lines at most per module (the shipped simulated model excepted)."""
    long = {
        str(path.relative_to(PACKAGE)): lines
        for path in sources()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
        and str(path.relative_to(PACKAGE)) not in LONG_ALLOWED
    }
    assert long == {}


@pytest.mark.parametrize(
    ("importer", "imported", "upward"),
    [
        ("cosmos_workflow.database.engine", "cosmos_workflow.engine.dispatch", True),
        ("cosmos_workflow.engine.dispatch", "cosmos_workflow.database.models", False),
        ("cosmos_workflow.execution.adapters.base", "cosmos_workflow.execution.targets", True),
        ("cosmos_workflow.execution.targets.ssh", "cosmos_workflow.execution.adapters", False),
        ("cosmos_workflow.manifest.specs", "cosmos_workflow", False),
        ("cosmos_workflow.errors", "cosmos_workflow.utils.clock", True),
    ],
)
def test_the_rule_itself(importer: str, imported: str, upward: bool) -> None:
    """The check tells upward from downward (so an empty result means something)."""
    rank_of = LAYERS.index
    assert (rank_of(layer_of(imported)) < rank_of(layer_of(importer))) is upward


def documented_modules() -> dict[str, set[str]]:
    """docs/architecture.md's module map: folder -> the module files it lists."""
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Module map", 1)[1]
    found: dict[str, set[str]] = {}
    folder = None
    for line in section.splitlines():
        if line.startswith("`") and line.rstrip().endswith("/`"):
            folder = line.strip("`/ ")
            found[folder] = set()
        elif line.startswith("- `") and folder is not None:
            found[folder].add(line[3:].split("`", 1)[0])
    return found


def test_the_architecture_page_lists_every_module() -> None:
    """The map stays true: every module is listed under its folder, and nothing else is."""
    actual: dict[str, set[str]] = {}
    for path in sources():
        relative = path.relative_to(PACKAGE)
        if len(relative.parts) == 1 or (
            path.name == "__init__.py" and relative.parent.name != "repository"
        ):
            continue
        actual.setdefault(str(relative.parent), set()).add(path.name)
    documented = {k: v for k, v in documented_modules().items() if k != "hydra_plugins"}
    assert documented == actual
