"""The shape of the code, checked with the standard library's ``ast``: no import cycle, the
dependency direction ``tasks.py → opskit → (sandbox, repairtool)``, no private sandbox names in
opskit, and every lazy (function-local) import in the ops layer and the CLI says why."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("repairtool", "opskit", "sandbox")


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            mods[name] = path
    return mods


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module a dotted import name lands in (or None: not ours)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> Iterator[tuple[ast.stmt, str, list[str]]]:
    """Every import statement (module level or not) with the project modules it imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield node, "", [n for a in node.names if (n := _resolve(a.name))]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            found = [n for a in node.names if (n := _resolve(f"{base}.{a.name}") or _resolve(base))]
            yield node, base, found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        deps = {d for _, _, found in _imports(module, path) for d in found}
        graph[module] = deps - {module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_among_the_packages_modules() -> None:
    """Function-local and TYPE_CHECKING imports count: a cycle hidden behind them is still one."""
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_dependencies_point_one_way() -> None:
    graph = _graph()
    top = {m: {d.split(".")[0] for d in deps} for m, deps in graph.items()}
    assert [
        m for m, deps in top.items() if m.startswith("repairtool") and deps - {"repairtool"}
    ] == []
    assert [m for m, deps in top.items() if m.startswith("sandbox") and "opskit" in deps] == []
    # the sandbox uses the repair package for the engine's schema and the project's Postgres
    used = {d for m, deps in graph.items() if m.startswith("sandbox") for d in deps}
    assert {d for d in used if d.startswith("repairtool")} <= {
        "repairtool.errors",
        "repairtool.localpg",
        "repairtool.stairway",
        "repairtool.stairway.db",
        "repairtool.stairway.schema",
    }


def test_opskit_uses_no_private_name_of_the_sandbox() -> None:
    private = [
        f"{m}: {base}.{a.name}"
        for m, path in MODULES.items()
        if m.startswith("opskit")
        for node, base, _ in _imports(m, path)
        if isinstance(node, ast.ImportFrom) and base.startswith("sandbox")
        for a in node.names
        if a.name.startswith("_")
    ]
    assert private == []


def _lazy_imports_without_reason(path: Path) -> list[str]:
    """Function-local imports with no comment on their line or the line above their block."""
    lines = path.read_text(encoding="utf-8").splitlines()
    tree = ast.parse("\n".join(lines))
    missing = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            first = node.lineno - 1
            # the block: the imports (and blank lines between import groups) above this one
            while first > 0 and (
                lines[first - 1].strip().startswith(("from ", "import "))
                or not lines[first - 1].strip()
            ):
                first -= 1
            block = lines[first - 1 : node.end_lineno] if first > 0 else lines[: node.end_lineno]
            if not any("#" in line for line in block):
                missing.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return missing


def test_every_lazy_import_of_the_ops_layer_and_the_cli_says_why() -> None:
    files = [
        ROOT / "tasks.py",
        *(ROOT / "opskit").rglob("*.py"),
        *(ROOT / "repairtool/cli").rglob("*.py"),
    ]
    missing = [m for f in files for m in _lazy_imports_without_reason(f)]
    assert missing == []
