"""Config keys owned by plugins: each space, algorithm, criterion and data set declares the keys of its
group that are its own (``Registry.register(name, keys=...)``); a key of an option the run did not
choose is refused at start-up with one line naming its owner, and a declared key is read by its plugin."""

from __future__ import annotations

import ast
import copy
import dataclasses
import inspect
import typing
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from gmnas_cli.config import register_configs
from gmnas_cli.config.schema import Config
from gmnas_cli.experiment.directory import comparable, identity
from gmnas_cli.pipeline.validate import PLUGIN_GROUPS, refuse_foreign_keys
from tests._reliability import error_lines, hash_files, run_inproc, temp_files
from tests.conftest import REPO, make_cfg

PACKAGE = REPO / "gmnas_cli"


def read_names(paths: list[Path]) -> set[str]:
    """Names read as an attribute (``cfg.depths``) or as a string key (``cfg.get("depths")``)."""
    names: set[str] = set()
    for path in paths:
        tree = ast.parse(path.read_text())
        declaration = {id(c) for kw in ast.walk(tree) if isinstance(kw, ast.keyword) and kw.arg == "keys"
                       for c in ast.walk(kw.value)}  # ``register(name, keys=(...))`` declares, not reads
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                names.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in declaration:
                names.add(node.value)
    return names


def plugin_sources(obj: object, group_dir: Path) -> list[Path]:
    """The files of a registered plugin: the module of each class in its MRO (a function: its module),
    widened to the module's folder where the plugin lives in a sub-package (``spaces/ofa/``)."""
    objs = inspect.getmro(obj) if inspect.isclass(obj) else (obj,)
    paths: set[Path] = set()
    for o in objs:
        module = inspect.getmodule(o)
        if module is None or not module.__name__.startswith("gmnas_cli.") or module.__name__.endswith(".base"):
            continue
        file = Path(module.__file__)
        paths |= set(file.parent.rglob("*.py")) if file.parent != group_dir else {file}
        # and the modules of its own group that it imports (darts.py: the second-order step in darts2.py)
        prefix = "gmnas_cli." + ".".join(group_dir.relative_to(PACKAGE).parts) + "."
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(prefix) \
                    and not node.module.endswith(".base"):
                target = PACKAGE.parent / (node.module.replace(".", "/") + ".py")
                if target.exists():
                    paths.add(target)
    return sorted(paths)


DECLARED = [(group, name, key) for group, registry, _ in PLUGIN_GROUPS
            for name in registry.names() for key in registry.keys_of(name)]


def test_every_plugin_group_declares_keys() -> None:
    assert {g for g, _, _ in DECLARED} == {"space", "algo", "criterion", "dataset"}


@pytest.mark.parametrize("group, name, key", DECLARED)
def test_a_declared_key_is_a_schema_field_read_by_its_plugin(group: str, name: str, key: str) -> None:
    registry, schema = next((r, s) for g, r, s in PLUGIN_GROUPS if g == group)
    assert key in {f.name for f in dataclasses.fields(schema)}, f"{group}={name} declares {key}, not in the schema"
    obj = registry[name]
    group_dir = Path(inspect.getfile(inspect.getmodule(obj))).parents[0]
    while group_dir.parent != PACKAGE:
        group_dir = group_dir.parent
    sources = plugin_sources(obj, group_dir)
    assert key in read_names(sources), (f"{group}.{key} is declared by {group}={name} but none of its files "
                                        f"({', '.join(str(p.relative_to(REPO)) for p in sources)}) reads it")


def schema_keys(schema: type, prefix: str = "") -> list[str]:
    hints = typing.get_type_hints(schema)
    keys = []
    for f in dataclasses.fields(schema):
        sub = hints[f.name]
        keys += schema_keys(sub, f"{prefix}{f.name}.") if dataclasses.is_dataclass(sub) else [prefix + f.name]
    return keys


def test_every_undeclared_key_is_read_somewhere() -> None:
    """A key no plugin declares is the pipeline's: some module reads it (by attribute or string key)."""
    declared = {f"{g}.{k}" for g, _, k in DECLARED}
    sources = [p for p in PACKAGE.rglob("*.py") if p.name != "schema.py" and p.parts[-2:] != ("cli", "help.py")]
    names = read_names(sources)
    unread = [k for k in schema_keys(Config) if not any(k == d or k.startswith(d + ".") for d in declared)
              and k.rsplit(".", 1)[-1] not in names]
    assert not unread, f"config keys that no code reads: {unread}"


def refused(tmp_path: Path, *overrides: str) -> str:
    out = tmp_path / "out"
    code, err = run_inproc("warmup", "experiment=smoke", f"out_dir={out}", *overrides)
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1, (code, err)
    assert hash_files(out) == {} and not temp_files(tmp_path)
    return lines[0].removeprefix("gmnas warmup: error: ")


@pytest.mark.parametrize("overrides, message", [
    (["space.depths=[2,2]"], "space.depths is a key of space=ofa_mbv3; this run uses space=nb201"),
    (["space=mobilenet", "space.C=8", "dataset=imagenet", "dataset.root=X"],
     "space.C is a key of space=darts, space=nb201; this run uses space=mobilenet"),
    (["algo.kd_ratio=0.5"], "algo.kd_ratio is a key of algo=ofa; this run uses algo=darts"),
    (["space.stem_width=16"], "space.stem_width is a key of space=mobilenet; this run uses space=nb201"),
    (["criterion=exhaustive", "criterion.batches=3"], "criterion.batches is a key of criterion=gm; this run uses "
                                                      "criterion=exhaustive"),
    (["dataset.valid_size=100"], "dataset.valid_size is a key of dataset=imagenet; this run uses dataset=digits"),
    (["algo.evolution.population=8"], "algo.evolution is a key of algo=ofa; this run uses algo=darts"),
])
def test_a_key_of_another_plugin_is_refused_naming_its_owner(tmp_path: Path, overrides: list[str],
                                                             message: str) -> None:
    assert refused(tmp_path, *overrides) == message


def test_the_smoke_preset_sets_no_key_of_another_plugin(tmp_path: Path) -> None:
    """experiment=smoke composes with every space, algorithm and criterion it supports: per-plugin sizes
    live in conf/experiment_space|algo|criterion/smoke_<option>.yaml."""
    register_configs()
    conf = REPO / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        for group in ("space", "algo", "criterion"):
            for option in sorted((conf / group).glob("*.yaml")):
                refuse_foreign_keys(compose(config_name="config", overrides=["experiment=smoke",
                                                                             f"{group}={option.stem}"]))


def test_identity_ignores_keys_of_unchosen_plugins_and_retired_keys(tmp_path: Path) -> None:
    """An experiment made when experiment=smoke still set algo.eval_archs on algo=darts (and the schema
    had space.kernel_sizes) has the same identity: neither could change what it computed."""
    cfg = make_cfg(tmp_path, "experiment=smoke")
    mine = identity(cfg, "search")
    older = copy.deepcopy(mine)
    older["algo"].update(eval_archs=4, eval_batches=1)
    older["space"]["kernel_sizes"] = []
    assert comparable(older) == comparable(mine)
    older["algo"]["arch_lr"] = 0.1  # a key of the chosen algorithm still counts
    assert comparable(older) != comparable(mine)


def test_identity_of_a_run_made_before_retrain_dropout(tmp_path: Path) -> None:
    """A select/retrain snapshot written before retrain.dropout existed matches while dropout is 0 (what
    those runs computed), and not once a dropout is set."""
    cfg = make_cfg(tmp_path, "experiment=smoke")
    mine = identity(cfg, "retrain")
    older = copy.deepcopy(mine)
    del older["retrain"]["dropout"]
    assert mine["retrain"]["dropout"] == 0.0 and comparable(older) == comparable(mine)
    mine["retrain"]["dropout"] = 0.2
    assert comparable(older) != comparable(mine)
