"""One direction between the logger and the monitors: toolkit/monitoring uses toolkit/logging, never back."""

from __future__ import annotations

import ast
from pathlib import Path

LOGGING = Path(__file__).resolve().parents[2] / "toolkit" / "logging"


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function (lazy imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_logging_imports_nothing_from_monitoring():
    files = sorted(LOGGING.rglob("*.py"))
    assert len(files) > 10
    offenders = {
        f"{path.relative_to(LOGGING.parents[1])}: {module}"
        for path in files
        for module in imported_modules(path)
        if module == "toolkit.monitoring" or module.startswith("toolkit.monitoring.")
    }
    assert not offenders


def test_the_scan_sees_a_lazy_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from toolkit.monitoring.tensorboard import Category\n")
    assert "toolkit.monitoring.tensorboard" in imported_modules(probe)
