"""The experiment directory ``outputs/<name>/`` through which stages hand over (docs/method-facts.md).

Layout::

    config/<stage>.yaml        composed config of each stage (snapshot)
    status/<stage>.json        completion record of a stage (per leaf for search)
    tree.json                  the partition tree
    nodes/<id>/                one checkpoint folder per tree node
    search/<leaf>/             per-leaf search result, curves, checkpoints
    selection.json             the chosen leaf/architecture and the evidence
    retrain/                   retrain checkpoints and result
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gmnas_cli.config.schema import NAME, NAME_HINT
from gmnas_cli.experiment.state import read_snapshot, read_status
from gmnas_cli.infra import ranks
from gmnas_cli.infra.errors import ConfigError, StageError
from gmnas_cli.infra.io import atomic_write_text, write_json
from gmnas_cli.infra.registry import Registry

# Keys that do not change what an experiment computes (excluded from its identity).
# `amp` is not volatile: bf16 autocast changes what a CUDA run computes (docs/fidelity.md, precision).
# `device` is (auto and cuda name the same run), but the resolved device type is not: stages add it
# as `device_type` (Experiment(cfg, device_type=...)), so a resume on another device type is refused.
_VOLATILE = {"force", "resume", "deps", "leaf", "device", "quiet", "report", "bench", "rank", "status", "tree", "arch", "logger", "threads", "out_dir",
             "name", "channels_last", "deterministic", "analyze"}
# Sections that only later stages read: they are part of those stages' identity only.
# select reads `retrain` too: successive halving short-retrains with its settings.
_STAGE_SECTIONS = {"select": ["select", "benchmark", "retrain"], "retrain": ["retrain", "select", "benchmark"]}
STAGE_ORDER = ["warmup", "split", "search", "select", "retrain"]
# Keys removed from the schema that no code ever read: an experiment made before keeps its identity.
_RETIRED = {"space": ("kernel_sizes",)}
# Keys added to the schema later, with the value that computes what runs made before them computed:
# an experiment made before compares equal while the key keeps that value.
_ADDED_AT = {"retrain": {"dropout": 0.0}}
# What a stage writes itself once it has started its work (relative to the experiment root); a config
# snapshot of a stage that left none of these behind (it failed first) binds no later run.
_OWN_ARTEFACTS = {"warmup": ["nodes/0/ckpt.pt", "nodes/0/ckpt.pt.prev"],
                  "split": ["nodes/0/gm_progress_*", "nodes/[1-9]*"], "search": ["search/*"],
                  "select": ["selection.json", "select_sh"], "retrain": ["retrain/*"]}


def default_name(cfg: DictConfig) -> str:
    """Readable default name: space-algo-criterion-dataset-seed."""
    # The plugins' own labels (``SearchSpace.experiment_label``, ``Algorithm.experiment_label``), asked
    # through the registries by kind: this layer lies below the plugins.
    space = Registry.of("space")[str(cfg.space.name)].experiment_label(cfg)
    algo = Registry.of("algo")[str(cfg.algo.name)].experiment_label(cfg)
    return f"{space}-{algo}-{cfg.criterion.name}-{cfg.dataset.name}-s{cfg.seed}"


def identity(cfg: DictConfig, stage: str, device_type: str | None = None) -> dict[str, Any]:
    """The part of the config that a stage's artefacts depend on, plus the resolved device type
    (``cpu``, ``cuda``) when given. A snapshot written before the device type was recorded lacks the
    key and is compared on the others."""
    full = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    extra = _STAGE_SECTIONS.get(stage, [])
    out = {k: v for k, v in full.items() if k not in _VOLATILE and (k not in ("select", "retrain",
           "benchmark") or k in extra)}
    if device_type is not None:
        out["device_type"] = device_type
    return out


def comparable(ident: dict[str, Any]) -> dict[str, Any]:
    """An identity without the keys that cannot change what the run computed: retired keys, and in each
    plugin group the keys declared by options the run did not choose (``Registry.register(keys=...)``;
    refused away from their defaults at start-up), so presets that stopped setting them match older runs."""
    out = copy.deepcopy(ident)
    for group, retired in _RETIRED.items():
        if isinstance(out.get(group), dict):
            for key in retired:
                out[group].pop(key, None)
    for group, added in _ADDED_AT.items():
        node = out.get(group)
        for key, value in added.items():
            if isinstance(node, dict) and key in node and node[key] == value:
                node.pop(key)
    for group in ("space", "algo", "criterion", "dataset"):
        node = out.get(group)
        if not isinstance(node, dict) or str(node.get("name")) not in Registry.of(group):
            continue
        for key, owners in Registry.of(group).owners().items():
            if str(node["name"]) not in owners:
                node.pop(key, None)
    return out


def config_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


class Experiment:
    """One experiment directory; all paths of its artefacts live here."""

    def __init__(self, cfg: DictConfig, device_type: str | None = None) -> None:
        self.cfg = cfg
        self.device_type = device_type  # part of the identity when set (a stage's Runtime sets it)
        self.name = cfg.name or default_name(cfg)
        if not self.name or re.fullmatch(NAME, self.name) is None:  # also a default built from odd option names
            raise ConfigError(f"name={self.name!r} is not allowed; allowed {NAME_HINT}")
        self.root = Path(cfg.out_dir) / self.name

    # -- paths ------------------------------------------------------------------------------
    @property
    def tree_path(self) -> Path:
        return self.root / "tree.json"

    def node_dir(self, node_id: int) -> Path:
        return self.root / "nodes" / str(node_id)

    def search_dir(self, leaf: int) -> Path:
        return self.root / "search" / str(leaf)

    @property
    def selection_path(self) -> Path:
        return self.root / "selection.json"

    @property
    def retrain_dir(self) -> Path:
        return self.root / "retrain"

    def status_path(self, stage: str) -> Path:
        return self.root / "status" / f"{stage}.json"

    # -- stage bookkeeping ------------------------------------------------------------------
    def is_done(self, stage: str) -> bool:
        """A completion record exists (and holds one: a damaged record is a one-line error)."""
        path = self.status_path(stage)
        done = path.exists()
        if done:
            read_status(path, stage)
        return ranks.agree(done)  # data parallel: rank 0's view

    def stage_ran(self, stage: str) -> bool:
        """``stage`` completed, or started its work and left artefacts (its config then binds)."""
        if self.is_done(stage) or (stage == "search" and any(self.root.glob("status/search-leaf*.json"))):
            return True
        return any(any(self.root.glob(pattern)) for pattern in _OWN_ARTEFACTS.get(stage, []))

    def require(self, stage: str, for_stage: str) -> None:
        """Refuse to run ``for_stage`` before ``stage`` completed."""
        if not self.is_done(stage):
            raise StageError(
                f"{for_stage}: stage '{stage}' has not completed in {self.root}; "
                f"run `gmnas {stage}` first (with the same config)"
            )

    def check_identity(self, stage: str) -> None:
        """Refuse a rerun into this experiment with a different config (unless force=true).

        Only stages that actually ran count: the snapshot of a run that failed before it wrote any
        artefact does not stop the corrected command."""
        if self.cfg.force:
            return
        mine = comparable(identity(self.cfg, stage, self.device_type))
        snaps = sorted((self.root / "config").glob("*.json")) if (self.root / "config").exists() else []
        snaps = [p for p in snaps if p.stem not in STAGE_ORDER or self.stage_ran(p.stem)]
        order = [stage, *STAGE_ORDER]  # name this stage's own change first
        for snap in sorted(snaps, key=lambda p: (order.index(p.stem) if p.stem in order else len(order), p.stem)):
            other_stage = snap.stem
            theirs = comparable(read_snapshot(snap))
            keys = set(mine) & set(theirs)
            if other_stage not in _STAGE_SECTIONS:
                keys -= {"select", "retrain", "benchmark"}
            elif other_stage != stage:
                keys -= set(_STAGE_SECTIONS[other_stage])
            diff = sorted(k for k in keys if mine[k] != theirs[k])
            if diff:
                detail = _first_difference(mine, theirs, diff[0])
                raise StageError(
                    f"{stage}: {self.root} was made with a different config ({detail}, from stage "
                    f"'{other_stage}'); use another name=... or force=true"
                )

    def snapshot_config(self, stage: str) -> None:
        """Write the composed config of ``stage`` (YAML for people, JSON for checks)."""
        cfg_dir = self.root / "config"
        snap = self.cfg
        if snap.leaf is not None:  # the stage's config, the same for every job of `-m leaf=...`
            snap = copy.deepcopy(snap)
            snap.leaf = None
        atomic_write_text(cfg_dir / f"{stage}.yaml", OmegaConf.to_yaml(snap, resolve=True))
        write_json(cfg_dir / f"{stage}.json", identity(self.cfg, stage, self.device_type))

    def mark_done(self, stage: str, **info: Any) -> None:
        write_json(self.status_path(stage), {"stage": stage, "finished": time.time(),
                                             "config": config_hash(identity(self.cfg, stage, self.device_type)), **info})

    def clear(self, stage: str) -> None:
        """Forget a completion record (force=true reruns); later stages are invalidated too."""
        idx = STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)
        for later in STAGE_ORDER[idx:]:
            p = self.status_path(later)
            if p.exists():
                os.unlink(p)
        status = self.root / "status"
        if stage in ("warmup", "split", "search") and status.exists():
            for p in status.glob("search-leaf*.json"):
                os.unlink(p)


def _first_difference(a: Any, b: Any, key: str) -> str:
    va, vb = a[key], b[key]
    path = key
    while isinstance(va, dict) and isinstance(vb, dict):
        diff = sorted(k for k in set(va) | set(vb) if va.get(k) != vb.get(k))
        if not diff:
            break
        path += "." + diff[0]
        va, vb = va.get(diff[0]), vb.get(diff[0])
    return f"{path}={va!r}, was {vb!r}"
