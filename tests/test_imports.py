"""The package has no import cycles: statically (every import statement, wherever it stands) and when each module
is the first vggtkit module a fresh interpreter imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import vggtkit

PACKAGE = Path(vggtkit.__file__).parent


def module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ("vggtkit", *path.relative_to(PACKAGE).with_suffix("").parts)
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def imports_of(name: str, known: set[str]) -> set[str]:
    """The vggtkit modules a module names in any import statement (module level, functions, TYPE_CHECKING)."""
    path = PACKAGE.joinpath(*name.split(".")[1:])
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # "from pkg import sub" names the sub-module when there is one
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return {m for m in found if m in known and m != name}


def test_no_import_cycles_in_the_source():
    names = set(module_names())
    graph = {name: imports_of(name, names) for name in names}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(names):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_every_module_imports_first_in_a_fresh_interpreter():
    """``__main__`` modules are scripts (importing one runs the command line) and are left out."""
    script = f"""
import importlib, sys
import torch, numpy  # shared third-party state may stay; only vggtkit is imported afresh for each module
failed = []
for name in {[n for n in module_names() if not n.endswith("__main__")]!r}:
    for key in [k for k in sys.modules if k == "vggtkit" or k.startswith("vggtkit.")]:
        del sys.modules[key]
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{{name}}: {{type(exc).__name__}}: {{exc}}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
