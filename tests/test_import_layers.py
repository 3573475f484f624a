"""The layers hold: processes -> model interface -> toolkit, read from every file's imports (ast, no import run).

- toolkit/ never imports an extension (`extensions_built_in`, `extensions`), not even inside a function;
- a model (extensions_built_in/diffusion_models) never imports a process (any other extension package);
- a process never imports another process;
- a process imports only the toolkit and its own package: never a model's package (it reaches the model
  through the registry and the interface in toolkit/models/), not even inside a function;
- the web UI (ui/) imports no extension: it reads run folders and starts run.py, and reaches process and
  model classes only through the toolkit (the registry, `Job.dry_run`); nothing in toolkit/ or the
  extensions imports the UI;
- the top-level packages and modules of toolkit/ (toolkit.logging, toolkit.job, ...) import each other
  without a cycle (module-level imports; `if TYPE_CHECKING:` imports run never and are left out);
- no two modules of the project import each other, directly or round a longer loop, counting the imports
  inside functions (a lazy import kept for start-up time is fine as long as it closes no loop);
  `if TYPE_CHECKING:` imports are left out here too: they name a type for the checker and never run.
The checker itself is tested on small trees written to tmp_path, so a rule that stopped finding its
violation would fail here too.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXTENSION_ROOTS = ("extensions_built_in", "extensions")
UI = "ui"
PROJECT_ROOTS = ("toolkit", *EXTENSION_ROOTS, UI)
MODELS = "extensions_built_in.diffusion_models"


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported module, dotted (a `from m import name` that names a submodule: m.name)
    path: str  # file, relative to the root
    line: int
    module_level: bool  # False inside a function or an `if TYPE_CHECKING:` block
    runs: bool = True  # False in an `if TYPE_CHECKING:` block, which only the type checker reads

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.target}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _resolve(node: ast.ImportFrom, source: str, package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = source.split(".") if package else source.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def file_imports(path: Path, root: Path, known: set[str]) -> list[Import]:
    """Every import of one file, function-level ones included, each resolved to the module it loads."""
    source = module_name(path, root)
    relative = str(path.relative_to(root))
    found: list[Import] = []

    def visit(node: ast.AST, module_level: bool, runs: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(Import(source, alias.name, relative, child.lineno, module_level, runs) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                target = _resolve(child, source, _is_package(path))
                for alias in child.names:
                    candidate = f"{target}.{alias.name}"
                    found.append(Import(source, candidate if candidate in known else target, relative, child.lineno, module_level, runs))
            inner = module_level and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            type_only = _type_checking_block(child)
            visit(child, inner and not type_only, runs and not type_only)

    visit(ast.parse(path.read_text(), filename=str(path)), True, True)
    return found


def project_imports(root: Path) -> list[Import]:
    files = [path for top in PROJECT_ROOTS if (root / top).is_dir() for path in (root / top).rglob("*.py")]
    known = {module_name(path, root) for path in files}
    return [found for path in sorted(files) for found in file_imports(path, root, known)]


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _process_of(module: str) -> str | None:
    """The process package a module belongs to: any extension package that is not the models' one."""
    parts = module.split(".")
    if parts[0] not in EXTENSION_ROOTS or len(parts) < 2 or _within(module, MODELS):
        return None
    return ".".join(parts[:2])


def layer_violations(imports: list[Import]) -> list[str]:
    problems = []
    for found in imports:
        if _within(found.source, "toolkit") and any(_within(found.target, top) for top in EXTENSION_ROOTS):
            problems.append(f"toolkit imports an extension: {found}")
        target_process, source_process = _process_of(found.target), _process_of(found.source)
        if _within(found.source, MODELS) and target_process:
            problems.append(f"a model imports a process: {found}")
        if source_process and target_process and source_process != target_process:
            problems.append(f"a process imports another process: {found}")
        elif source_process and not target_process and any(_within(found.target, top) for top in EXTENSION_ROOTS):
            problems.append(f"a process imports a model's package: {found}")
        if _within(found.source, UI) and any(_within(found.target, top) for top in EXTENSION_ROOTS):
            problems.append(f"the UI imports an extension: {found}")
        if not _within(found.source, UI) and _within(found.target, UI):
            problems.append(f"imports the UI: {found}")
    return list(dict.fromkeys(problems))  # `from m import a, b` is one line to fix


def toolkit_cycles(imports: list[Import]) -> list[str]:
    """Cycles between toolkit's top-level packages/modules, each with the imports that close it."""
    edges: dict[str, dict[str, Import]] = defaultdict(dict)
    for found in imports:
        if not (found.module_level and _within(found.source, "toolkit") and _within(found.target, "toolkit")):
            continue
        source, target = (".".join(name.split(".")[:2]) for name in (found.source, found.target))
        if source != target and target != "toolkit":
            edges[source].setdefault(target, found)
    return _describe_cycles(edges)


def module_cycles(imports: list[Import]) -> list[str]:
    """Cycles between any modules of the project, counting function-level imports (not TYPE_CHECKING ones)."""
    known = {found.source for found in imports}
    edges: dict[str, dict[str, Import]] = defaultdict(dict)
    for found in imports:
        if found.runs and found.target in known and found.target != found.source:
            edges[found.source].setdefault(found.target, found)
    return _describe_cycles(edges)


def _describe_cycles(edges: dict[str, dict[str, Import]]) -> list[str]:
    cycles = []
    for group in _strongly_connected(edges):
        inside = [
            f"{found}{'' if found.module_level else ' (in a function)'}"
            for node in sorted(group)
            for target, found in sorted(edges[node].items())
            if target in group
        ]
        cycles.append(f"import cycle between {', '.join(sorted(group))}: " + "; ".join(inside))
    return cycles


def _strongly_connected(edges: dict[str, dict[str, Import]]) -> list[set[str]]:
    """Tarjan's algorithm; only groups of two or more nodes (a cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges.get(node, {}):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return groups


# -- the project ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def project() -> list[Import]:
    """The project's imports, read once for the tests below."""
    return project_imports(ROOT)


def test_no_import_crosses_a_layer_the_wrong_way(project):
    problems = layer_violations(project)
    assert not problems, "\n".join(problems)


def test_toolkit_packages_import_each_other_without_a_cycle(project):
    cycles = toolkit_cycles(project)
    assert not cycles, "\n".join(cycles)


def test_no_two_modules_import_each_other_even_inside_functions(project):
    cycles = module_cycles(project)
    assert not cycles, "\n".join(cycles)


def test_the_checker_reads_the_project(project):
    imports = project
    sources = {found.source for found in imports}
    assert {"toolkit.job", "extensions_built_in.sd_trainer.SDTrainer", "extensions_built_in.generate.GenerateProcess", "ui.app"} <= sources
    lazy = [f for f in imports if f.source == "extensions_built_in.sd_trainer.SDTrainer" and not f.module_level]
    assert any(found.target == "toolkit.dry_run" for found in lazy)  # a function-level import is seen (_load_model's)


# -- the checker on small trees ---------------------------------------------------------------
def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_checker_finds_each_kind_of_wrong_import(tmp_path):
    root = _tree(tmp_path, {
        "toolkit/__init__.py": "",
        "toolkit/lazy.py": "def f():\n    from extensions_built_in.diffusion_models.m import X\n",
        "extensions_built_in/__init__.py": "",
        "extensions_built_in/diffusion_models/__init__.py": "",
        "extensions_built_in/diffusion_models/m.py": "from extensions_built_in.trainer.run import go\nX = 1\n",
        "extensions_built_in/trainer/__init__.py": "",
        "extensions_built_in/trainer/run.py": "def go():\n    pass\n",
        "extensions_built_in/trainer/inspect.py": "def look():\n    from extensions_built_in.diffusion_models.m import X\n",
        "extensions_built_in/sampler/__init__.py": "from ..trainer import run\n",
        "ui/__init__.py": "",
        "ui/pages.py": "from toolkit.lazy import f\ndef g():\n    from extensions_built_in.trainer import run\n",
        "toolkit/served.py": "from ui import pages\n",
    })
    problems = layer_violations(project_imports(root))
    assert problems == [
        "a model imports a process: extensions_built_in/diffusion_models/m.py:1 imports extensions_built_in.trainer.run",
        "a process imports another process: extensions_built_in/sampler/__init__.py:1 imports extensions_built_in.trainer.run",
        "a process imports a model's package: extensions_built_in/trainer/inspect.py:2 imports extensions_built_in.diffusion_models.m",
        "toolkit imports an extension: toolkit/lazy.py:2 imports extensions_built_in.diffusion_models.m",
        "imports the UI: toolkit/served.py:1 imports ui.pages",
        "the UI imports an extension: ui/pages.py:3 imports extensions_built_in.trainer.run",
    ]


def test_checker_finds_a_cycle_and_ignores_function_and_type_checking_imports(tmp_path):
    root = _tree(tmp_path, {
        "toolkit/__init__.py": "",
        "toolkit/a/__init__.py": "from toolkit.b import helper\n",
        "toolkit/b.py": "from toolkit.a import thing\n",
        "toolkit/c.py": "def f():\n    from toolkit.d import y\n",
        "toolkit/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from toolkit.c import f\nfrom toolkit.c import f\n",
    })
    assert toolkit_cycles(project_imports(root)) == [
        "import cycle between toolkit.a, toolkit.b: toolkit/a/__init__.py:1 imports toolkit.b; toolkit/b.py:1 imports toolkit.a"
    ]


def test_checker_finds_a_cycle_closed_inside_a_function_between_any_modules(tmp_path):
    root = _tree(tmp_path, {
        "toolkit/__init__.py": "",
        "toolkit/network/__init__.py": "",
        "toolkit/network/lora.py": "def attach(kind):\n    from toolkit.network.lokr import attach_lokr\n",
        "toolkit/network/lokr.py": "from toolkit.network.lora import ADAPTER\n",
        "toolkit/plan.py": "from toolkit.plan_text import lines\n",
        "toolkit/plan_text.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from toolkit.plan import Plan\n",
        "extensions_built_in/__init__.py": "",
        "extensions_built_in/diffusion_models/m/__init__.py": "",
        "extensions_built_in/diffusion_models/m/a.py": "from .b import x\n",
        "extensions_built_in/diffusion_models/m/b.py": "from .c import y\n",
        "extensions_built_in/diffusion_models/m/c.py": "def f():\n    from . import a\n",
    })
    imports = project_imports(root)
    assert toolkit_cycles(imports) == []  # the per-package rule sees none of these
    assert module_cycles(imports) == [
        "import cycle between extensions_built_in.diffusion_models.m.a, extensions_built_in.diffusion_models.m.b, "
        "extensions_built_in.diffusion_models.m.c: extensions_built_in/diffusion_models/m/a.py:1 imports "
        "extensions_built_in.diffusion_models.m.b; extensions_built_in/diffusion_models/m/b.py:1 imports "
        "extensions_built_in.diffusion_models.m.c; extensions_built_in/diffusion_models/m/c.py:2 imports "
        "extensions_built_in.diffusion_models.m.a (in a function)",
        "import cycle between toolkit.network.lokr, toolkit.network.lora: toolkit/network/lokr.py:1 imports "
        "toolkit.network.lora; toolkit/network/lora.py:2 imports toolkit.network.lokr (in a function)",
    ]
