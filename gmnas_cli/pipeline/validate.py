"""Semantic checks that fail before any training (impossible split settings, bad names)."""

from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from gmnas_cli.algorithms import ALGORITHMS
from gmnas_cli.benchmarks import check_benchmark
from gmnas_cli.config.bounds import check_declared
from gmnas_cli.config.derived import branching_list, effective_splits, option
from gmnas_cli.config.schema import AlgoConfig, Config, CriterionConfig, DatasetConfig, SpaceConfig
from gmnas_cli.criteria import CRITERIA
from gmnas_cli.data import DATASETS
from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.infra.registry import Registry
from gmnas_cli.selection.halving import check_selection
from gmnas_cli.spaces import SPACES, build_space


def compatible(space: str, algo: str) -> bool:
    """Whether ``algo=algo`` can search ``space=space``: each side's declared list allows the other
    (``Algorithm.spaces``, ``SearchSpace.algorithms``; None allows any)."""
    allowed_spaces, allowed_algos = ALGORITHMS[algo].spaces, SPACES[space].algorithms
    return (allowed_spaces is None or space in allowed_spaces) and (allowed_algos is None or algo in allowed_algos)


# The plugin config groups: a key declared by some options of a group (``Registry.register(name,
# keys=...)``) belongs to them; set on a run of another option it is refused.
PLUGIN_GROUPS: tuple[tuple[str, Registry, type], ...] = (
    ("space", SPACES, SpaceConfig), ("algo", ALGORITHMS, AlgoConfig),
    ("criterion", CRITERIA, CriterionConfig), ("dataset", DATASETS, DatasetConfig))


def schema_default(schema: type, key: str) -> Any:
    """The default of ``schema``'s field ``key`` as plain Python (a nested dataclass as a dict)."""
    f = next(f for f in dataclasses.fields(schema) if f.name == key)
    value = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


def refuse_foreign_keys(cfg: DictConfig) -> None:
    """ConfigError for the first key of a plugin the run did not choose that is set away from its default:
    ``space.depths is a key of space=ofa_mbv3; this run uses space=nb201``."""
    for group, registry, schema in PLUGIN_GROUPS:
        chosen = str(cfg[group].name)
        for key, owners in registry.owners().items():
            if chosen in owners or key not in cfg[group]:
                continue
            value = cfg[group][key]
            plain = OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value
            if plain != schema_default(schema, key):
                raise ConfigError(f"{group}.{key} is a key of {', '.join(f'{group}={o}' for o in owners)}; "
                                  f"this run uses {group}={chosen}")


def validate(cfg: DictConfig, command: str) -> None:
    """Raise ConfigError naming the key and value of the first impossible setting."""

    check_declared(cfg, Config)  # known keys, declared ranges and cross-key rules, before any file is written
    if command in ("select", "run"):
        check_selection(cfg)  # successive halving's epoch windows fit in retrain.epochs

    check_benchmark(cfg.benchmark)  # e.g. pickled NB201 files only on opt-in, refused before any write
    for key, reg in (("space", SPACES), ("algo", ALGORITHMS), ("criterion", CRITERIA), ("dataset", DATASETS)):
        if cfg[key].name not in reg:
            raise ConfigError(f"{key}.name={cfg[key].name!r}; valid: {', '.join(reg.names())}")
    if command in ("report", "status", "tree"):  # they read experiments; nothing else to check
        return
    refuse_foreign_keys(cfg)
    _refuse_unread_keys(cfg)
    if command != "arch" and not compatible(cfg.space.name, cfg.algo.name):
        raise ConfigError(f"algo={cfg.algo.name} cannot search space={cfg.space.name}; algorithms for this space: "
                          f"{', '.join(a for a in ALGORITHMS.names() if compatible(cfg.space.name, a))}")
    ALGORITHMS[cfg.algo.name].check_config(cfg)  # what bounds cannot express (e.g. OFA's FLOPs window)
    if cfg.leaf is not None and (isinstance(cfg.leaf, bool) or not isinstance(cfg.leaf, int) or cfg.leaf < 0):
        raise ConfigError(f"leaf={cfg.leaf!r}: expected a leaf index (an integer >= 0)")
    space = build_space(cfg.space, cfg.dataset.num_classes, cfg.dataset.in_channels, cfg.dataset.image_size)
    batching = option(cfg.criterion.batched_ops)
    if batching == "channels" and not space.op_copies:
        raise ConfigError(f"criterion.batched_ops=channels: space {cfg.space.name} has no copies-side-by-side "
                          f"pass; valid here: off, vmap, auto")
    splits = effective_splits(cfg)
    splittable = space.splittable_edges()
    if splits > len(splittable):
        raise ConfigError(f"splits={splits} exceeds the {len(splittable)} splittable edges of space "
                          f"{cfg.space.name}")
    factors = branching_list(cfg) if splits else []
    n_ops = min(len(space.splittable_ops(space.full_mask(), e)) for e in splittable)
    criterion = CRITERIA[cfg.criterion.name]
    criterion.check_config(cfg, factors, n_ops)
    if splits == 0:
        return
    if criterion.uses_branching:
        for b in factors:
            if b < 2:
                raise ConfigError(f"branching={b}: a split needs at least 2 groups")
            if b > n_ops:
                raise ConfigError(f"branching={b} exceeds the {n_ops} splittable ops of an edge "
                                  f"({', '.join(space.splittable_ops(space.full_mask(), splittable[0]))})")
    sel = cfg.criterion.edge_selection
    if isinstance(sel, (list, ListConfig)):
        bad = [e for e in sel if e not in splittable]
        if bad:
            raise ConfigError(f"criterion.edge_selection: unknown edge {bad[0]!r}; valid: {', '.join(splittable)}")
        if len(sel) < splits:
            raise ConfigError(f"criterion.edge_selection lists {len(sel)} edges but splits={splits}")
    elif sel not in ("cut_cost", "random", "random_per_node"):
        raise ConfigError(f"criterion.edge_selection={sel!r}; valid: cut_cost, random, random_per_node, "
                          f"or a list of edges")


def _refuse_unread_keys(cfg: DictConfig) -> None:
    """Keys whose effect depends on another key, set where nothing reads them."""
    if float(cfg.retrain.get("dropout", 0.0)) and "dropout" not in SPACES[cfg.space.name].retrain_keys:
        raise ConfigError(f"retrain.dropout={cfg.retrain.dropout} has no effect on space {cfg.space.name!r}; "
                          f"remove it")
    if float(cfg.train.get("warmup_lr", 0.0)) and not cfg.get("split_train_arch", False):
        raise ConfigError(f"train.warmup_lr={cfg.train.warmup_lr} has no effect without split_train_arch=true "
                          f"(the warm-up then shares train.lr's cosine with the split phase)")
