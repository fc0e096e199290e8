"""What every stage does around its work: predecessors (run first, ``pipeline/deps.py``), identity
check, no-op when done."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from gmnas_cli.algorithms import ALGORITHMS, Algorithm, build_algorithm
from gmnas_cli.benchmarks import benchmark_enabled
from gmnas_cli.config.derived import option
from gmnas_cli.experiment.directory import STAGE_ORDER
from gmnas_cli.experiment.state import read_result, read_retrain_result, read_selection
from gmnas_cli.experiment.tree import PartitionTree
from gmnas_cli.infra import distributed
from gmnas_cli.infra.errors import ConfigError, StageError
from gmnas_cli.infra.interrupt import set_stage
from gmnas_cli.infra.io import checkpoint_ok, prev_path, remove_stale_temps
from gmnas_cli.infra.locks import holder, is_held, lock_path, stage_lock
from gmnas_cli.infra.logging import log
from gmnas_cli.infra.seeding import generator, seed_everything, seeded_init
from gmnas_cli.infra.tblog import check_logger
from gmnas_cli.pipeline.deps import bring_predecessors, missing_predecessors
from gmnas_cli.pipeline.runtime import Runtime
from gmnas_cli.spaces import Mask, Supernet
from gmnas_cli.training.trainer import SupernetTrainer

# Artefacts a forced rerun of a stage discards (relative to the experiment root).
STAGE_ARTEFACTS = {
    "warmup": ["tree.json", "nodes", "search", "selection.json", "select_sh", "retrain"],
    "split": ["search", "selection.json", "select_sh", "retrain"],
    "search": ["search", "selection.json", "select_sh", "retrain"],
    "select": ["selection.json", "select_sh", "retrain"],
    "retrain": ["retrain"],
}


def run_stage(cfg: DictConfig, stage: str, body: Callable[[Runtime], dict | None],
              requires: list[str] = ()) -> Runtime:
    """Check predecessors and config, skip a completed stage, snapshot config, run, record."""
    rt = Runtime(cfg)
    exp = rt.exp
    set_stage(stage)
    refuse_discard_in_leaf_sweep(cfg, stage)
    missing = missing_predecessors(exp, list(requires))
    if missing and option(cfg.deps) == "never":
        exp.require(missing[0], stage)
    if missing:  # like make: run them first; bad input fails before any of them writes a file
        exp.check_identity(stage)
        preflight(rt, stage)
        if stage not in _DATA_STAGES:  # its predecessors read the data set (the first lock writes a file)
            _ = Runtime(cfg).data  # loaded and dropped: the predecessors load their own
        bring_predecessors(cfg, exp, stage, missing)
        set_stage(stage)
    for pred in requires:
        exp.require(pred, stage)
    redo = None
    if not cfg.force and exp.is_done(stage):
        exp.check_identity(stage)
        redo = damaged_own_state(rt, stage)
        if redo is None:
            log.info(f"{stage}: already complete in {exp.root}; nothing to do (force=true redoes it)")
            return rt
        log.warning(f"{stage}: {redo}; redoing the stage (what is intact is reused)")
    exp.check_identity(stage)
    resume = option(cfg.resume)
    preflight(rt, stage, discarding=bool(cfg.force) or resume == "never")
    if resume == "never" and not cfg.force and _has_artefacts(exp.root, stage):
        raise StageError(f"{stage}: resume=never would discard checkpoints in {exp.root}; add force=true")
    with ExitStack() as held:  # one run of this stage at a time, from the discard to the record
        for name, alone in stage_locks(cfg, stage):
            held.enter_context(stage_lock(exp.root, name, alone, f"{stage} in {exp.root}"))
        return _run_locked(rt, stage, body, resume, redo)


def stage_locks(cfg: DictConfig, stage: str) -> list[tuple[str, bool]]:
    """The locks a run holds, (name, exclusive): the stage's own; a leaf job of ``search`` shares
    the stage with its sibling jobs and holds its leaf alone."""
    if stage == "search" and cfg.leaf is not None:
        return [("search", False), (f"search-leaf{int(cfg.leaf)}", True)]
    return [(stage, True)]


def _run_locked(rt: Runtime, stage: str, body: Callable[[Runtime], dict | None], resume: str,
                redo: str | None) -> Runtime:
    cfg, exp = rt.cfg, rt.exp
    if cfg.force or resume == "never":
        later = STAGE_ORDER[STAGE_ORDER.index(stage) + 1:] if stage in STAGE_ORDER else []
        running = [s for s in later if is_held(exp.root, s)]
        if running:  # the discard would delete the files a running later stage reads and writes
            raise StageError(f"{stage}: force=true would delete the files of `gmnas {running[0]}`, which is "
                             f"running in {exp.root} ({holder(lock_path(exp.root, running[0]))}); wait for it")
        with distributed.one_writer() as write:  # data parallel: rank 0 deletes
            if write:
                exp.clear(stage)  # first: a kill during the discard must not leave the stage marked complete
                discard(exp.root, stage, lambda: root_tree(rt))
    with distributed.one_writer() as write:
        if write and redo is not None:
            exp.clear(stage)  # later stages follow the redone one (the same seeds: the same results)
            for p in damaged_checkpoints(rt, stage):
                for f in (p, prev_path(p)):
                    f.unlink(missing_ok=True)
        if write:
            exp.root.mkdir(parents=True, exist_ok=True)
            for p in remove_stale_temps(cleanup_root(rt, stage)):
                log.info(f"{stage}: removed {p}, a temporary file left by an interrupted run")
    exp.snapshot_config(stage)
    seed_everything(int(cfg.seed))
    start = time.time()
    info = body(rt) or {}  # the stage lock tells `gmnas status` running from interrupted
    if info.get("incomplete"):
        return rt
    exp.mark_done(stage, seconds=round(time.time() - start, 3), **info)
    log.info(f"{stage}: complete ({time.time() - start:.1f}s) in {exp.root}")
    return rt


def in_multirun() -> bool:
    """This job is one of a Hydra sweep (``-m``: joblib, submitit...)."""

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def refuse_discard_in_leaf_sweep(cfg: DictConfig, stage: str) -> None:
    """``force``/``resume=never`` in ``-m leaf=...`` would make every leaf job discard the whole
    stage, its siblings' work included (docs/cluster.md): refused before any write."""
    resume = option(cfg.resume)
    if cfg.leaf is not None and (cfg.force or resume == "never") and in_multirun():
        key = "force=true" if cfg.force else "resume=never"
        raise ConfigError(f"{stage}: {key} in a leaf sweep (-m leaf=...) would delete the other leaves' "
                          f"work; rerun without -m (gmnas {stage} {key}), then sweep the leaves")


def cleanup_root(rt: Runtime, stage: str) -> Path:
    """Where a stage may remove stale temporary files: a leaf job only in its own leaf's folder
    (siblings run beside it, possibly on other hosts), any other job in the experiment."""
    if stage == "search" and rt.cfg.leaf is not None and rt.exp.tree_path.exists():
        return rt.exp.search_dir(PartitionTree.load(rt.exp.tree_path).leaf(int(rt.cfg.leaf)).id)
    return rt.exp.root


# Stages that read the data set: a missing data set fails before anything is written.
_DATA_STAGES = ("warmup", "split", "search")


def preflight(rt: Runtime, stage: str, discarding: bool = False) -> None:
    """Everything bad input can break, checked before the stage writes anything: the device, the
    data set, the benchmark's path, and the partition tree (unless a forced warmup replaces it)."""
    _ = rt.device
    check_logger(str(rt.cfg.logger))
    if stage in _DATA_STAGES:
        _ = rt.data
        check_steps(rt, stage)
    bench = rt.cfg.benchmark
    if stage in ("select", "retrain") and benchmark_enabled(bench) and bench.path and not Path(bench.path).exists():
        raise StageError(f"{stage}: benchmark.path={bench.path} does not exist (benchmark={bench.name})")
    if rt.exp.tree_path.exists() and not (discarding and stage in ("warmup", "split")):  # both rebuild it
        tree = PartitionTree.load(rt.exp.tree_path)
        if stage == "search" and rt.cfg.leaf is not None:
            tree.leaf(int(rt.cfg.leaf))  # a leaf index out of range fails here
        leaves = [n.id for n in tree.leaves()]
        if stage == "select":  # the state it reads, checked before a discard or a snapshot
            for leaf in leaves:
                path = rt.exp.search_dir(leaf) / "result.json"
                if path.exists():
                    read_result(path, leaves, rt.space.str_to_arch)
        if stage == "retrain" and rt.exp.selection_path.exists():
            read_selection(rt.exp.selection_path, leaves, rt.space.str_to_arch)


def check_steps(rt: Runtime, stage: str) -> None:
    """Refuse a stage whose epochs would take no optimisation step: the trainer drops the last
    partial batch (``SupernetTrainer.fit``), so a half smaller than ``train.batch_size`` trains nothing.
    warmup trains weights only; split and search also step alpha on the architecture half."""
    bs = int(rt.cfg.train.batch_size)
    w_half, a_half = rt.halves
    halves = [("weights", w_half)] + ([("architecture", a_half)] if stage != "warmup" else [])
    for what, half in halves:
        if len(half) < bs:
            n = len(rt.data.train_y)
            raise ConfigError(
                f"{stage}: the {what} half holds {len(half)} images (of {n} training images), fewer than "
                f"train.batch_size={bs}: every epoch would take zero optimisation steps; use a smaller "
                f"train.batch_size (<= {len(half)}) or more images (dataset.limit >= {2 * bs})")


def _has_artefacts(root: Path, stage: str) -> bool:
    if stage == "split" and (root / "nodes").exists():
        if any(d.name != "0" for d in (root / "nodes").iterdir()) or any(root.glob("nodes/0/gm_progress*")):
            return True
    return any((root / rel).exists() for rel in STAGE_ARTEFACTS.get(stage, []))


def root_tree(rt: Runtime) -> PartitionTree:
    """The tree of a fresh warmup: the root alone, with this config's space."""
    cfg, space = rt.cfg, rt.space
    return PartitionTree.with_root(space.full_mask(), space=cfg.space.name, ops=list(space.ops),
                                   edges=list(space.edges), shared_ops=list(cfg.space.unsplittable_ops))


def damaged_checkpoints(rt: Runtime, stage: str) -> list[Path]:
    """Checkpoints of a completed stage that no longer load (neither the file nor its ``.prev``)."""
    if stage == "warmup":
        ckpt = rt.exp.node_dir(0) / "ckpt.pt"
        return [] if checkpoint_ok(ckpt) else [ckpt]
    return []


def damaged_own_state(rt: Runtime, stage: str) -> str | None:
    """Why a stage marked complete must run again (its own checkpoint is corrupted, its tree is
    gone), else None; a damaged file that a rerun cannot repair is a one-line ``StageError``."""
    exp = rt.exp
    bad = damaged_checkpoints(rt, stage)
    if bad:
        return f"{bad[0]} is corrupted or missing, and so is {prev_path(bad[0]).name}"
    if stage == "warmup" and not exp.tree_path.exists():
        return f"{exp.tree_path} is missing"
    if stage in ("split", "search", "select"):
        tree = PartitionTree.load(exp.tree_path)
        leaves = [n.id for n in tree.leaves()]
        for leaf in leaves if stage == "split" and len(tree.nodes) > 1 else []:
            ckpt = exp.node_dir(leaf) / "ckpt.pt"
            if not checkpoint_ok(ckpt):
                raise StageError(f"{ckpt} is corrupted or missing (and so is its .prev); "
                                 "`gmnas split force=true` redoes the split from the warmup checkpoint")
        if stage == "search":
            for leaf in leaves:
                read_result(exp.search_dir(leaf) / "result.json", leaves, rt.space.str_to_arch)
        if stage == "select":
            read_selection(exp.selection_path, leaves, rt.space.str_to_arch)
    if stage == "retrain":
        read_retrain_result(exp.retrain_dir / "result.json")
    return None


def discard(root: Path, stage: str, fresh_tree: Callable[[], PartitionTree] | None = None) -> None:
    """Remove a stage's artefacts (and its successors') before a forced rerun; a forced split
    rebuilds a tree.json that does not load from ``fresh_tree`` (the root the warmup trained)."""
    for rel in STAGE_ARTEFACTS.get(stage, []):
        p = root / rel
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    if stage == "split" and (root / "nodes").exists():
        # GM progress, then the tree back to its root, then the children: any prefix resumes cleanly.
        for f in root.glob("nodes/0/gm_progress*.json"):
            f.unlink()
        try:
            tree = PartitionTree.load(root / "tree.json")
            tree.nodes[0].split = None
            tree = PartitionTree(nodes=[tree.nodes[0]], meta=tree.meta)
        except StageError:  # damaged or missing: the warmup's root, from the config
            if fresh_tree is None:
                raise
            tree = fresh_tree()
            log.warning(f"split: {root / 'tree.json'} does not load; rebuilt from the warmup's root")
        tree.save(root / "tree.json")
        for d in (root / "nodes").iterdir():
            if d.name != "0":
                shutil.rmtree(d)


def build_trainer(rt: Runtime, mask: Mask, tag: str, init: str | int = "root") -> SupernetTrainer:
    """A supernet for ``mask`` with seeded initial weights and alpha, its algorithm and trainer.

    ``init``: "root" (the root supernet; checkpoints loaded afterwards replace it), or a leaf id:
    a restarted leaf draws its own initialisation, as the official code builds a new model per
    leaf (``get_new_model()``); alpha starts at 1e-3 * N(0, 1) (DARTS, official GM-NAS).
    """
    seed = int(rt.cfg.seed)
    with seeded_init(*((seed, "init") if init == "root" else (seed, "init", init))):
        net: Supernet = rt.space.build_supernet(mask)
    net = net.to(rt.device)
    if rt.cfg.channels_last:  # CPU and CUDA (docs/performance.md)
        net = net.to(memory_format=torch.channels_last)
    algo: Algorithm = build_algorithm(rt.cfg.algo, rt.space, net)
    algo.init_alpha(generator(seed, "alpha", init))
    trainer = SupernetTrainer(net, algo, rt.cfg, rt.halves, rt.device, tag)
    trainer.logger = rt.logger
    return trainer


def splitting_schedule_epochs(cfg: DictConfig) -> int:
    """The configured algorithm's split-phase schedule length (``Algorithm.splitting_schedule_epochs``)."""
    return ALGORITHMS[cfg.algo.name].splitting_schedule_epochs(cfg)
