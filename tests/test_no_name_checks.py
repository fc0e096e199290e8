"""The plugin contract holds (docs/design.md, "The plugin contract"): the pipeline asks plugins through
the hooks their base classes declare, never by ``getattr``/``hasattr`` discovery, and the modules around
the plugins never compare a configured option name with a plugin's name (the listed exceptions aside)."""

from __future__ import annotations

import ast
from pathlib import Path

from gmnas_cli.algorithms import ALGORITHMS, Algorithm
from gmnas_cli.benchmarks import BENCHMARKS, Benchmark, NB201Api, NB201Table, NB301Surrogate
from gmnas_cli.criteria import CRITERIA
from gmnas_cli.criteria.base import Criterion
from gmnas_cli.data import DATASETS, ImageData
from gmnas_cli.spaces import SPACES, SearchSpace, Supernet
from tests.conftest import REPO

PACKAGE = REPO / "gmnas_cli"
# The layers around the plugins: they may ask a plugin only through its declared hooks.
AROUND = ("stages", "pipeline", "report", "experiment", "config", "cli", "training", "selection")
# (module, option name): the listed exceptions of docs/design.md ("Name checks left on purpose").
EXCEPTIONS = {("report/ofa_tables.py", "ofa")}


def option_names() -> set[str]:
    return {n for reg in (SPACES, ALGORITHMS, CRITERIA, DATASETS, BENCHMARKS) for n in reg.names()}


def name_comparisons(path: Path, names: set[str]) -> list[tuple[int, str]]:
    """(line, option) of each comparison of an expression naming a ``name`` with a plugin option literal
    (``cfg.space.name == "nb201"``, ``rec.get("criterion.name") != "none"``, ``name in ("darts",)``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        literals = [c.value for o in operands for c in ([o] if isinstance(o, ast.Constant) else
                    getattr(o, "elts", [])) if isinstance(c, ast.Constant) and isinstance(c.value, str)]
        named = any("name" in ast.unparse(o) for o in operands if not isinstance(o, ast.Constant))
        found += [(node.lineno, v) for v in literals if named and v in names]
    return found


def test_no_plugin_is_named_outside_its_own_module() -> None:
    names = option_names()
    bad = []
    for part in AROUND:
        for path in sorted((PACKAGE / part).rglob("*.py")):
            rel = str(path.relative_to(PACKAGE))
            bad += [f"{rel}:{line} compares with {v!r}" for line, v in name_comparisons(path, names)
                    if (rel, v) not in EXCEPTIONS]
    assert not bad, "plugins named outside their modules (declare a hook instead): " + "; ".join(bad)


def test_the_name_check_finds_one(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text('def f(cfg):\n    return cfg.space.name == "nb201" or cfg.criterion.name in ("none",)\n')
    assert [v for _, v in name_comparisons(probe, option_names())] == ["nb201", "none"]


def hook_names() -> set[str]:
    """Attributes of the plugin base classes and of every registered plugin class."""
    classes = [SearchSpace, Supernet, Algorithm, Criterion, Benchmark, NB201Api, NB201Table, NB301Surrogate,
               ImageData, *(SPACES[n] for n in SPACES.names()), *(ALGORITHMS[n] for n in ALGORITHMS.names()),
               *(CRITERIA[n] for n in CRITERIA.names())]
    return {a for c in classes for a in dir(c) if not a.startswith("__")}


def test_no_hook_is_discovered_by_getattr() -> None:
    hooks = hook_names()
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("getattr", "hasattr") and len(node.args) >= 2
                    and isinstance(node.args[1], ast.Constant) and node.args[1].value in hooks):
                bad.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.func.id}(..., {node.args[1].value!r})")
    assert not bad, "hooks found by getattr/hasattr (declare them on the base class): " + "; ".join(bad)
