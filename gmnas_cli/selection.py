"""Successive halving among the leaves' architectures (paper Appendix C, Algorithm 3).

Each rung r short-retrains every surviving candidate's architecture from scratch for
``select.successive_halving.schedule[r]`` epochs with the evaluation protocol ``cfg.retrain``
(network built by ``space.build_network``), training on the weights half ``rt.halves[0]`` and
ranking by accuracy on the held-out architecture half ``rt.halves[1]`` (never the test split:
DESIGN.md lists ranking on test accuracy among the public code's defects). The best
``ceil(n / eta)`` of the ``n`` candidates of a rung survive.
"""

from __future__ import annotations

import math
from typing import Any

from gmnas_cli.errors import ConfigError
from gmnas_cli.experiment import config_hash
from gmnas_cli.io import read_json, write_json
from gmnas_cli.logging import log


def kept_per_rung(n: int, schedule: list[int], eta: int) -> list[int]:
    """Candidates kept after each rung that runs: ``ceil(n / eta)`` per rung until one is left or the
    schedule ends, e.g. n=8, eta=2, 3 rungs -> [4, 2, 1]; n=7 -> [4, 2, 1]; n=4 -> [2, 1]."""
    out = []
    for _ in schedule:
        if n <= 1:
            break
        n = math.ceil(n / eta)
        out.append(n)
    return out


def _cache_key(rt: Any, arch: str, epochs: int) -> str:
    """What a short retrain's result depends on; a cached result is reused only if it matches."""
    from omegaconf import OmegaConf

    cfg = rt.cfg
    parts = {"arch": arch, "epochs": epochs, "seed": int(cfg.seed),
             "retrain": OmegaConf.to_container(cfg.retrain, resolve=True),
             "dataset": OmegaConf.to_container(cfg.dataset, resolve=True),
             "space": OmegaConf.to_container(cfg.space, resolve=True)}
    return config_hash(parts)


def successive_halving(rt: Any, candidates: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Algorithm 3: rungs of short retrains; returns (best candidate, evidence).

    ``candidates`` are the leaves' search results (``leaf``, ``arch``). With n candidates and
    ``eta``, a rung keeps ``ceil(n / eta)`` of them (see ``kept_per_rung``); it stops when one is left
    or when the schedule ends, and then the best of the last rung wins. Ranking: higher held-out
    accuracy, then lower held-out loss, then lower leaf id. Each short retrain is seeded by
    (experiment seed, rung, leaf) and its result is kept in ``<experiment>/select_sh/`` so that an
    interrupted selection resumes (per-epoch checkpoints there too) and reruns are deterministic.
    """
    from gmnas_cli.training.retrain import short_retrain

    cfg = rt.cfg
    sh = cfg.select.successive_halving
    schedule = [int(e) for e in sh.schedule]
    eta = int(sh.eta)
    if eta < 2:
        raise ConfigError(f"select.successive_halving.eta={eta} must be >= 2")
    if not schedule or any(e < 1 for e in schedule):
        raise ConfigError(f"select.successive_halving.schedule={schedule}: needs epochs >= 1 per rung")
    if not candidates:
        raise ConfigError("successive halving: no candidates")
    order = {c["leaf"]: i for i, c in enumerate(candidates)}
    alive = list(candidates)
    rungs: list[dict[str, Any]] = []
    cache_dir = rt.exp.root / "select_sh"
    for r, epochs in enumerate(schedule):
        if len(alive) <= 1:
            break
        scores: dict[int, dict[str, float]] = {}
        for c in alive:
            leaf = c["leaf"]
            path = cache_dir / f"rung{r}-leaf{leaf}.json"
            key = _cache_key(rt, c["arch"], epochs)
            cached = read_json(path) if path.exists() else None
            if cached is not None and cached.get("key") == key:
                scores[leaf] = cached["result"]
                continue
            arch = rt.space.str_to_arch(c["arch"])
            ckpt = cache_dir / f"rung{r}-leaf{leaf}-{key}.pt"  # per-epoch checkpoint of this config only
            for stale in cache_dir.glob(f"rung{r}-leaf{leaf}-*.pt*") if cache_dir.exists() else []:
                if not stale.name.startswith(ckpt.name):
                    stale.unlink()
            result = short_retrain(rt, arch, epochs, f"select/sh/r{r}/leaf{leaf}", ckpt)
            write_json(path, {"key": key, "leaf": leaf, "rung": r, "epochs": epochs, "arch": c["arch"],
                              "result": result})
            for p in (ckpt, ckpt.with_name(ckpt.name + ".prev")):
                if p.exists():
                    p.unlink()
            scores[leaf] = result
            log.info(f"successive halving rung {r + 1}/{len(schedule)}: leaf {leaf} ({epochs} epochs) "
                     f"val_acc {result['val_acc']:.4f} val_loss {result['val_loss']:.4f}")
        ranked = sorted(alive, key=lambda c: (-scores[c["leaf"]]["val_acc"], scores[c["leaf"]]["val_loss"],
                                              order[c["leaf"]]))
        keep = math.ceil(len(alive) / eta)
        rungs.append({"rung": r, "epochs": epochs, "candidates": [c["leaf"] for c in alive],
                      "val_acc": {str(c["leaf"]): scores[c["leaf"]]["val_acc"] for c in alive},
                      "val_loss": {str(c["leaf"]): scores[c["leaf"]]["val_loss"] for c in alive},
                      "kept": [c["leaf"] for c in ranked[:keep]]})
        alive = ranked[:keep]
    best = alive[0]
    evidence = {"schedule": schedule, "eta": eta, "ranked_on": "held-out architecture half of the training set",
                "rungs": rungs}
    return best, evidence


__all__ = ["kept_per_rung", "successive_halving"]
