"""Semantic checks that fail before any training (impossible split settings, bad names)."""

from __future__ import annotations

from omegaconf import DictConfig, ListConfig

from gmnas_cli.algorithms import ALGORITHMS
from gmnas_cli.benchmarks.nb201 import check_trust
from gmnas_cli.config.bounds import check_declared
from gmnas_cli.config.derived import branching_list, effective_splits, option
from gmnas_cli.config.schema import Config
from gmnas_cli.criteria import CRITERIA
from gmnas_cli.data import DATASETS
from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.selection.halving import check_selection
from gmnas_cli.spaces import SPACES, build_space


def compatible(space: str, algo: str) -> bool:
    """Whether ``algo=algo`` can search ``space=space``: each side's declared list allows the other
    (``Algorithm.spaces``, ``SearchSpace.algorithms``; None allows any)."""
    allowed_spaces, allowed_algos = ALGORITHMS[algo].spaces, SPACES[space].algorithms
    return (allowed_spaces is None or space in allowed_spaces) and (allowed_algos is None or algo in allowed_algos)


def validate(cfg: DictConfig, command: str) -> None:
    """Raise ConfigError naming the key and value of the first impossible setting."""

    check_declared(cfg, Config)  # known keys, declared ranges and cross-key rules, before any file is written
    if command in ("select", "run"):
        check_selection(cfg)  # successive halving's epoch windows fit in retrain.epochs

    if cfg.benchmark.name == "nb201":  # pickled benchmark files only on opt-in, refused before any write
        check_trust(cfg.benchmark)
    for key, reg in (("space", SPACES), ("algo", ALGORITHMS), ("criterion", CRITERIA), ("dataset", DATASETS)):
        if cfg[key].name not in reg:
            raise ConfigError(f"{key}.name={cfg[key].name!r}; valid: {', '.join(reg.names())}")
    if cfg.criterion.name == "gm":
        CRITERIA["gm"](cfg.criterion)  # refuses early_stop with average=gradient or cut=ncut
        workers = int(cfg.criterion.workers)
        if workers > 1 and cfg.criterion.early_stop:
            raise ConfigError(f"criterion.workers={workers} has no effect with criterion.early_stop=true (its test "
                              f"scores all edges together); use criterion.workers=1 or 0")
        if workers > 1 and option(cfg.device) == "cuda":
            raise ConfigError(f"criterion.workers={workers}: parallel scoring processes are CPU only; "
                              f"use criterion.workers=1 with device=cuda")
    if command in ("report", "status", "tree"):  # they read experiments; nothing else to check
        return
    _refuse_unread_keys(cfg)
    if not compatible(cfg.space.name, cfg.algo.name):
        raise ConfigError(f"algo={cfg.algo.name} cannot search space={cfg.space.name}; algorithms for this space: "
                          f"{', '.join(a for a in ALGORITHMS.names() if compatible(cfg.space.name, a))}")
    check = getattr(ALGORITHMS[cfg.algo.name], "check_config", None)
    if check is not None:  # settings of one algorithm that bounds cannot express (e.g. OFA's FLOPs window)
        check(cfg)
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
    if splits == 0:
        return
    factors = branching_list(cfg)
    n_ops = min(len(space.splittable_ops(space.full_mask(), e)) for e in splittable)
    if cfg.criterion.name != "exhaustive":
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
    if cfg.criterion.name == "gm" and option(cfg.criterion.cut) == "within":
        for b in factors:
            if 2 * b > n_ops:
                raise ConfigError(f"criterion.cut=within needs groups of >= 2 ops: branching={b} exceeds "
                                  f"{n_ops // 2} for {n_ops} ops")


def _refuse_unread_keys(cfg: DictConfig) -> None:
    """Keys that only some data sets or algorithms read, set where nothing reads them."""
    if cfg.dataset.name != "imagenet":
        for key, default in (("valid_size", 0), ("loader", "auto"), ("workers", 4)):
            if key in cfg.dataset and cfg.dataset[key] != default:
                raise ConfigError(f"dataset.{key}={cfg.dataset[key]!r} has no effect on dataset {cfg.dataset.name!r} "
                                  f"(it is read by dataset=imagenet); remove it")
    if float(cfg.train.get("warmup_lr", 0.0)) and not cfg.get("split_train_arch", False):
        raise ConfigError(f"train.warmup_lr={cfg.train.warmup_lr} has no effect without split_train_arch=true "
                          f"(the warm-up then shares train.lr's cosine with the split phase)")
    if str(cfg.algo.get("target", "none")) != "none" and cfg.algo.name != "proxyless":
        raise ConfigError(f"algo.target={cfg.algo.target!r} has no effect on algo {cfg.algo.name!r} "
                          f"(the hardware regulariser is algo=proxyless's)")
