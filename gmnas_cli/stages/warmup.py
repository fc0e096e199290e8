"""``gmnas warmup``: train the root supernet's weights with alpha frozen (paper 3.4, Alg. 1)."""

from __future__ import annotations

from omegaconf import DictConfig

from gmnas_cli.io import checkpoint_exists
from gmnas_cli.runtime import Runtime
from gmnas_cli.stages.common import build_trainer, run_stage, splitting_schedule_epochs
from gmnas_cli.tree import PartitionTree


def warmup(rt: Runtime) -> dict:
    cfg, exp = rt.cfg, rt.exp
    ckpt = exp.node_dir(0) / "ckpt.pt"
    if not exp.tree_path.exists() or not checkpoint_exists(ckpt):  # a fresh start: the tree of this config
        tree = PartitionTree.with_root(rt.space.full_mask(), space=cfg.space.name, ops=list(rt.space.ops),
                                       edges=list(rt.space.edges),
                                       shared_ops=list(cfg.space.unsplittable_ops))
        tree.save(exp.tree_path)
    trainer = build_trainer(rt, rt.space.full_mask(), "warmup/node0")
    if checkpoint_exists(ckpt):
        trainer.load(ckpt)
    trainer.algo.prepare(trainer, exp.node_dir(0))  # OFA: the full network first (no-op elsewhere)
    trainer.fit(int(cfg.warmup_epochs), splitting_schedule_epochs(cfg), train_arch=False, ckpt=ckpt,
                stage="warmup")
    if not ckpt.exists():  # warmup_epochs=0: the initial weights are the warm state
        trainer.save(ckpt)
    trainer.write_curve(exp.node_dir(0) / "curve.csv")
    return {"epochs": trainer.epoch}


def main(cfg: DictConfig) -> None:
    run_stage(cfg, "warmup", warmup)
