"""Values derived from the composed config that several layers need: the effective number of
splits, one branching factor per split, the lengths of the lr/temperature schedules, and the plain
string of an enum option. Imports no plugin module (a plugin's declared answer, such as whether a
criterion splits, is asked through ``Registry.of``), so any module may use it.
"""

from __future__ import annotations

from typing import Any

from omegaconf import ListConfig

from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.infra.registry import Registry


def option(value: Any) -> str:
    """The string of a config option, whether OmegaConf gives the enum member or its value."""
    return str(getattr(value, "value", value))


def effective_splits(cfg: Any) -> int:
    """Splits the run makes: ``splits``, or 0 for One-Shot (``criterion=none`` never splits)."""
    return int(cfg.splits) if splits_enabled(cfg) else 0


def splits_enabled(cfg: Any) -> bool:
    """Whether the configured criterion splits at all (``Criterion.splits``; One-Shot's does not)."""
    return criterion_splits(str(cfg.criterion.name))


def criterion_splits(name: str) -> bool:
    """``Criterion.splits`` of option ``name``, asked through the registry (this module imports none);
    a name no longer registered (an old experiment's record) splits."""
    registry = Registry.of("criterion")
    return bool(registry[name].splits) if name in registry else True


def branching_list(cfg: Any) -> list[int]:
    """``branching`` as one factor per split (a single value applies to every split)."""
    b = cfg.branching
    values = list(b) if isinstance(b, (list, tuple, ListConfig)) else [b]
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int):
            try:
                v = int(str(v))
            except ValueError:
                raise ConfigError(f"branching={cfg.branching!r}: expected an integer or a list of integers") from None
        out.append(v)
    splits = effective_splits(cfg)
    if len(out) == 1:
        out = out * max(splits, 1)
    elif len(out) != splits:
        raise ConfigError(f"branching={list(out)} has {len(out)} values but splits={splits}")
    return out


def run_epochs(cfg: Any) -> int:
    """Epochs of the whole run: warmup before each split, then the search (NB201 DARTS: 60)."""
    return int(cfg.warmup_epochs) * max(effective_splits(cfg), 1) + int(cfg.search_epochs)


def search_schedule_epochs(cfg: Any) -> int:
    """Length of the search phase's schedule (it starts at epoch 0 of the leaf's search):
    ``train.search_schedule=restart`` a cosine over ``search_epochs`` (official DARTS space,
    ``--fix_sche 1``); ``run`` keeps the whole run's length (official NB201: T_max 60 for 30
    restarted epochs, ending near lr 0.0136)."""
    return int(cfg.search_epochs) if option(cfg.train.search_schedule) == "restart" else run_epochs(cfg)


def joint_schedule(cfg: Any) -> tuple[int, int] | None:
    """``split_train_arch``: (cosine length, first joint epoch) of the official GM + ProxylessNAS joint
    phase (paper App. D.3; skhu101/GM-NAS ``proxylessnas``): after ``warmup_epochs`` frozen epochs
    (their own cosine), the root trains jointly for ``warmup_epochs``, each split's children for
    ``warmup_epochs`` more, and the leaves for ``search_epochs``, all on one cosine. None: the plain
    schedule (docs/design.md)."""
    splits = effective_splits(cfg)
    if not cfg.split_train_arch or splits == 0:
        return None
    warm = int(cfg.warmup_epochs)
    return warm * splits + int(cfg.search_epochs), warm
