"""Successive halving among the leaves' architectures (paper Appendix C, Algorithm 3).

Two protocols (``select.successive_halving.protocol``):

- ``official`` (default; the public ``successive_halving.py`` of skhu101/GM-NAS): the rungs
  are epoch windows of the real retrain runs. Every candidate starts its run under the full
  ``cfg.retrain`` protocol (its own cosine over ``retrain.epochs``); after window r
  (``window_start[r]`` <= epoch < ``window_end[r]``, default epochs 0-29, then 31-99) the best
  ``ceil(n / eta)`` by the held-out accuracy over the window, averaged as
  ``select.successive_halving.average`` says (default ``moving``: the official moving average,
  about 90 % of the weight on the window's last epoch; ``mean``: the plain mean), continue the SAME runs; the
  survivors of the last window run to ``retrain.epochs`` and the winner is the best by the final
  held-out accuracy.
- ``short_retrain``: rung r short-retrains every surviving candidate from scratch for
  ``schedule[r]`` epochs (its own compressed cosine); the best ``ceil(n / eta)`` survive.

Both train on the weights half ``rt.halves[0]`` and rank by accuracy on the held-out
architecture half ``rt.halves[1]``, never on the test split (the public code reads the test set
here; docs/fidelity.md row 24), so the winner is then retrained on the full
training set by the ``retrain`` stage. Network: ``space.build_network``.
"""

from __future__ import annotations

import math
from typing import Any

from omegaconf import OmegaConf

from gmnas_cli.config.derived import option
from gmnas_cli.experiment.directory import config_hash
from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.infra.io import read_json, write_json
from gmnas_cli.infra.logging import log
from gmnas_cli.training.retrain import NetworkTrainer, build_network, short_retrain


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


def _cache_key(rt: Any, arch: str, epochs: int, **extra: Any) -> str:
    """What a retrain's result depends on; a cached result is reused only if it matches."""

    cfg = rt.cfg
    parts = {"arch": arch, "epochs": epochs, "seed": int(cfg.seed), **extra,
             "retrain": OmegaConf.to_container(cfg.retrain, resolve=True),
             "dataset": OmegaConf.to_container(cfg.dataset, resolve=True),
             "space": OmegaConf.to_container(cfg.space, resolve=True)}
    return config_hash(parts)


def successive_halving(rt: Any, candidates: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Successive halving under ``select.successive_halving.protocol``; returns (best, evidence)."""
    protocol = option(rt.cfg.select.successive_halving.protocol)
    if protocol == "official":
        return official_halving(rt, candidates)
    return short_retrain_halving(rt, candidates)


def check_windows(cfg: Any) -> list[tuple[int, int]]:
    """The official protocol's rung windows ``[(start, end), ...]``; a one-line ConfigError if they
    are empty, unordered, or do not fit in ``retrain.epochs``."""
    sh = cfg.select.successive_halving
    starts, ends = [int(e) for e in sh.window_start], [int(e) for e in sh.window_end]
    epochs = int(cfg.retrain.epochs)
    if not starts or len(starts) != len(ends):
        raise ConfigError(f"select.successive_halving.window_start={starts} and window_end={ends} need one "
                          f"start and one end per rung")
    prev = 0
    for a, b in zip(starts, ends):
        if not prev <= a < b:
            raise ConfigError(f"select.successive_halving windows {list(zip(starts, ends))}: each needs "
                              f"start < end, after the previous window")
        prev = b
    if ends[-1] > epochs:
        raise ConfigError(f"select.successive_halving.window_end={ends} reaches beyond retrain.epochs={epochs}; "
                          f"lower the windows or use select.successive_halving.protocol=short_retrain")
    return list(zip(starts, ends))


def check_selection(cfg: Any) -> None:
    """Start-up check of ``select``: the official protocol's windows (``check_windows``)."""
    crit = option(cfg.select.criterion)
    protocol = option(cfg.select.successive_halving.protocol)
    if crit == "successive_halving" and protocol == "official":
        check_windows(cfg)


def window_weights(n: int, average: str) -> list[float]:
    """Weights (summing to 1) of a window's n epochs, oldest first.

    ``moving``: the official ``moving_avg_of_list`` (skhu101/GM-NAS, successive_halving.py), the
    recursion avg <- (0.1 * i * avg + 0.9 * x_i) / (i + 1), gives epoch j of a window ending at
    epoch n-1 the weight 0.9 * 0.1^(n-1-j) / n: 90 % of the total on the last epoch, 9 % on the one
    before, 0.9 % before that. gmnas divides by the sum (1 - 0.1^n) / n, the same for every
    candidate of a window, so the ranking is the official one and the score is an accuracy.
    ``mean``: 1/n each.
    """
    if average == "mean":
        return [1.0 / n] * n
    raw = [0.9 * 0.1 ** (n - 1 - j) for j in range(n)]
    total = sum(raw)
    return [r / total for r in raw]


def _rank(alive: list[dict[str, Any]], scores: dict[int, dict[str, float]],
          order: dict[int, int]) -> list[dict[str, Any]]:
    """Higher held-out accuracy, then lower held-out loss, then lower leaf position."""
    return sorted(alive, key=lambda c: (-scores[c["leaf"]]["val_acc"], scores[c["leaf"]]["val_loss"],
                                        order[c["leaf"]]))


class _Run:
    """One candidate's real retrain run on the weights half, checkpointed after every epoch; the
    held-out half is scored after the epochs in ``eval_epochs`` (0-based) and stored in the history."""

    def __init__(self, rt: Any, cand: dict[str, Any], eval_epochs: set[int], cache_dir: Any) -> None:
        self.rt, self.leaf, self.eval_epochs = rt, cand["leaf"], eval_epochs
        epochs = int(rt.cfg.retrain.epochs)
        key = _cache_key(rt, cand["arch"], epochs, scored_epochs=sorted(eval_epochs))  # the history's scores
        self.ckpt = cache_dir / f"run-leaf{self.leaf}-{key}.pt"
        for stale in cache_dir.glob(f"run-leaf{self.leaf}-*.pt*") if cache_dir.exists() else []:
            if not stale.name.startswith(self.ckpt.name):
                stale.unlink()
        tag = f"select/sh/leaf{self.leaf}"
        net = build_network(rt.space, rt.space.str_to_arch(cand["arch"]), rt.cfg, tag)
        self.trainer = NetworkTrainer(net, rt.cfg, rt.halves[0], rt.device, tag, epochs, space=rt.space)
        if self.ckpt.exists():
            self.trainer.load(self.ckpt)

    def _score(self, epoch: int, record: dict[str, Any]) -> None:
        loss, acc = self.trainer.evaluate(self.rt.halves[1]) if epoch in self.eval_epochs else (math.nan, math.nan)
        record.update(val_loss=float(loss), val_acc=float(acc))

    def advance(self, until: int) -> None:
        self.trainer.fit(self.ckpt, until=until, on_epoch=self._score)

    def window(self, start: int, end: int, average: str = "moving") -> dict[str, float]:
        """Held-out accuracy and loss over epochs ``start <= e < end``, averaged by ``window_weights``."""
        hist = self.trainer.history[start:end]
        w = window_weights(len(hist), average)
        return {"val_acc": sum(wi * h["val_acc"] for wi, h in zip(w, hist)),
                "val_loss": sum(wi * h["val_loss"] for wi, h in zip(w, hist))}

    @property
    def seconds(self) -> float:
        return self.trainer.seconds


def official_halving(rt: Any, candidates: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The official protocol: rungs are epoch windows of the candidates' real retrain runs."""
    cfg = rt.cfg
    windows = check_windows(cfg)
    eta = int(cfg.select.successive_halving.eta)
    if eta < 2:
        raise ConfigError(f"select.successive_halving.eta={eta} must be >= 2")
    if not candidates:
        raise ConfigError("successive halving: no candidates")
    average = option(cfg.select.successive_halving.average)
    epochs = int(cfg.retrain.epochs)
    eval_epochs = {e for a, b in windows for e in range(a, b)} | {epochs - 1}
    order = {c["leaf"]: i for i, c in enumerate(candidates)}
    cache_dir = rt.exp.root / "select_sh"
    cache_dir.mkdir(parents=True, exist_ok=True)
    runs: dict[int, _Run] = {}
    alive = list(candidates)
    rungs: list[dict[str, Any]] = []

    def run(c: dict[str, Any]) -> _Run:
        if c["leaf"] not in runs:
            runs[c["leaf"]] = _Run(rt, c, eval_epochs, cache_dir)
        return runs[c["leaf"]]

    for r, (start, end) in enumerate(windows):
        if len(alive) <= 1:
            break
        scores = {}
        for c in alive:
            run(c).advance(end)
            scores[c["leaf"]] = run(c).window(start, end, average)
            log.info(f"successive halving rung {r + 1}/{len(windows)}: leaf {c['leaf']} epochs {start}-{end - 1} "
                     f"{average} held-out acc {scores[c['leaf']]['val_acc']:.4f}")
        ranked = _rank(alive, scores, order)
        keep = math.ceil(len(alive) / eta)
        rungs.append({"rung": r, "window": [start, end], "candidates": [c["leaf"] for c in alive],
                      "val_acc": {str(c["leaf"]): scores[c["leaf"]]["val_acc"] for c in alive},
                      "val_loss": {str(c["leaf"]): scores[c["leaf"]]["val_loss"] for c in alive},
                      "kept": [c["leaf"] for c in ranked[:keep]]})
        alive = ranked[:keep]
    final: dict[str, Any] = {}
    if len(alive) > 1:  # the winner comes from the full runs
        scores = {}
        for c in alive:
            run(c).advance(epochs)
            scores[c["leaf"]] = run(c).window(epochs - 1, epochs)
        alive = _rank(alive, scores, order)
        final = {"epochs": epochs, "candidates": [c["leaf"] for c in alive],
                 "val_acc": {str(c["leaf"]): scores[c["leaf"]]["val_acc"] for c in alive},
                 "val_loss": {str(c["leaf"]): scores[c["leaf"]]["val_loss"] for c in alive}}
    best = alive[0]
    evidence = {"protocol": "official", "windows": [list(w) for w in windows], "eta": eta, "average": average,
                "ranked_on": "held-out architecture half of the training set", "rungs": rungs, "final": final,
                "retrain_epochs": {str(leaf): r.trainer.epoch for leaf, r in sorted(runs.items())},
                "seconds": round(sum(r.seconds for r in runs.values()), 3)}
    return best, evidence


def short_retrain_halving(rt: Any, candidates: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Algorithm 3 with short retrains from scratch per rung; returns (best candidate, evidence).

    ``candidates`` are the leaves' search results (``leaf``, ``arch``). With n candidates and
    ``eta``, a rung keeps ``ceil(n / eta)`` of them (see ``kept_per_rung``); it stops when one is left
    or when the schedule ends, and then the best of the last rung wins. Ranking: higher held-out
    accuracy, then lower held-out loss, then lower leaf id. Each short retrain is seeded by
    (experiment seed, rung, leaf) and its result is kept in ``<experiment>/select_sh/`` so that an
    interrupted selection resumes (per-epoch checkpoints there too) and reruns are deterministic.
    """

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
    evidence = {"protocol": "short_retrain", "schedule": schedule, "eta": eta,
                "ranked_on": "held-out architecture half of the training set", "rungs": rungs}
    return best, evidence


__all__ = ["check_selection", "check_windows", "kept_per_rung", "official_halving", "short_retrain_halving",
           "successive_halving", "window_weights"]
