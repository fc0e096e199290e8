"""``gmnas warmup``: train the root supernet's weights with alpha frozen (paper 3.4, Alg. 1)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from gmnas_cli.config.derived import joint_schedule
from gmnas_cli.infra.io import checkpoint_exists, write_json
from gmnas_cli.pipeline.runtime import Runtime
from gmnas_cli.pipeline.stage import build_trainer, root_tree, run_stage, splitting_schedule_epochs
from gmnas_cli.training.trainer import SupernetTrainer


def warmup(rt: Runtime) -> dict:
    cfg, exp = rt.cfg, rt.exp
    ckpt = exp.node_dir(0) / "ckpt.pt"
    if not exp.tree_path.exists() or not checkpoint_exists(ckpt):  # a fresh start: the tree of this config
        root_tree(rt).save(exp.tree_path)
    record = rt.data.split_record
    if record is not None:  # which training images are held out (dataset=imagenet)
        write_json(exp.root / "data_split.json", record)
    trainer = build_trainer(rt, rt.space.full_mask(), "warmup/node0")
    if checkpoint_exists(ckpt):
        trainer.load(ckpt)
    trainer.algo.prepare(trainer, exp.node_dir(0))  # OFA: the full network first (no-op elsewhere)
    train_root(cfg, trainer, ckpt)
    if not ckpt.exists():  # warmup_epochs=0: the initial weights are the warm state
        trainer.save(ckpt)
    trainer.write_curve(exp.node_dir(0) / "curve.csv")
    return {"epochs": trainer.epoch}


def train_root(cfg: DictConfig, trainer: SupernetTrainer, ckpt: Path) -> None:
    """Warm the root up (alpha frozen); with ``split_train_arch`` then one joint interval (common.joint_schedule)."""
    warm = int(cfg.warmup_epochs)
    joint = joint_schedule(cfg)
    if joint is None:
        trainer.fit(warm, splitting_schedule_epochs(cfg), train_arch=False, ckpt=ckpt, stage="warmup")
        return
    length, offset = joint
    warm_lr = float(cfg.train.warmup_lr) or None  # official warm_up: its own cosine from 0.05
    trainer.fit(warm, warm, train_arch=False, ckpt=ckpt, stage="warmup", lr_max=warm_lr)
    trainer.fit(2 * warm, length, train_arch=trainer.algo.has_arch_params, ckpt=ckpt, stage="warmup",
                schedule_offset=offset)


def main(cfg: DictConfig) -> None:
    run_stage(cfg, "warmup", warmup)
