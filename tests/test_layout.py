"""The package's shape (docs/design.md "Layers"): no import cycle, imports only downwards between
layers, no module loose at the package top, and function-local imports only where deliberate."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "gmnas_cli"

# Bottom to top; a module may import its own layer and the layers below it.
LAYERS: list[set[str]] = [
    {"infra"},
    {"config"},
    {"experiment", "data", "benchmarks"},
    {"spaces"},
    {"algorithms", "training"},  # an algorithm's own leaf pipeline (OFA) drives the trainer
    {"criteria"},
    {"selection", "analysis", "report"},
    {"pipeline"},
    {"bench", "stages"},
    {"cli"},
]

# Function-local imports that are deliberate: optional dependencies, and lazy imports that keep
# `gmnas --help` and `gmnas status` from importing Hydra's schema, torch or the plugins.
OPTIONAL = ("xautodl", "onnxruntime", "submitit", "tensorboard", "torch.utils.tensorboard")
LAZY = {
    "gmnas_cli.cli.app": None,  # any: one Hydra application per command, started only when run
    "gmnas_cli.cli.help": {"gmnas_cli.config.schema"},
    "gmnas_cli.report.status": {"gmnas_cli.infra.io"},  # torch only when a checkpoint is read
    "gmnas_cli.stages.tree": {"gmnas_cli.report.split_plots"},  # matplotlib only with tree.plot=true
    # torch only where a checkpoint is written or read: the JSON and atomic-file helpers serve `gmnas status`
    "gmnas_cli.infra.io": {"torch"},
    "gmnas_cli.report.collect": {"pandas"},  # training curves only for `gmnas report`, not for `gmnas status`
}


def _modules() -> dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        rel = f.relative_to(REPO).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = f
    return out


def _imports(name: str, path: Path, mods: dict[str, Path]) -> list[tuple[str, bool]]:
    """(imported gmnas module, whether the import is function-local) for every import in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for t in targets:
            if t in mods and t != name:
                found.append((t, node.col_offset > 0))
    return found


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return len(LAYERS)  # gmnas_cli itself, python -m gmnas_cli
    for i, layer in enumerate(LAYERS):
        if parts[1] in layer:
            return i
    raise AssertionError(f"{module}: package {parts[1]!r} is in no layer of tests/test_layout.py")


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        for t, _ in _imports(m, f, mods):
            if not (m.startswith(t + ".") and mods[t].name == "__init__.py"):
                graph[m].add(t)
    return graph


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> None:
        state[v] = 1
        stack.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(w):] + [w]))
            if w not in state:
                visit(w)
        stack.pop()
        state[v] = 2

    for v in sorted(graph):
        if v not in state:
            visit(v)


def test_imports_go_down_the_layers():
    bad = [f"{m} imports {t}" for m, ts in _graph().items() for t in ts if _layer(t) > _layer(m)]
    assert not bad, "upward imports:\n" + "\n".join(sorted(bad))


def test_function_local_imports_are_deliberate():
    mods = _modules()
    bad = []
    for m, f in mods.items():
        for node in ast.walk(ast.parse(f.read_text())):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or node.col_offset == 0:
                continue
            mod = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            allowed = LAZY.get(m, set())
            if mod.startswith(OPTIONAL) or (m in LAZY and (allowed is None or mod in allowed)):
                continue
            bad.append(f"{f.relative_to(REPO)}:{node.lineno}: {mod}")
    assert not bad, "function-local imports (move them to the top, or break the cycle):\n" + "\n".join(bad)


def test_no_module_loose_at_the_package_top():
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert not loose, f"modules at the top of gmnas_cli/ (put each in the package of its concept): {loose}"
