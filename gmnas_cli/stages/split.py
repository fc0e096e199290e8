"""``gmnas split``: Algorithm 1's splitting phase (paper 3.2-3.4).

For split s = 0..splits-1: every leaf at depth s scores its unsplit edges with the criterion,
splits the chosen edge into ``branching[s]`` op groups, and each child starts as a copy of the
parent (weights, optimizer state, alpha) with a narrower mask; children then train alpha-frozen
(``split_train_arch=true``: jointly with alpha) for the next warmup interval (not after the last split: the search stage restarts the leaves).
Progress is resumable: the tree is saved after each split node, GM scores after each edge,
children's checkpoints every epoch.
"""

from __future__ import annotations

from omegaconf import DictConfig

from gmnas_cli.config.derived import branching_list, effective_splits, joint_schedule
from gmnas_cli.criteria import CRITERIA, SplitContext
from gmnas_cli.experiment.tree import PartitionTree
from gmnas_cli.infra.io import load_checkpoint, save_checkpoint
from gmnas_cli.infra.logging import console, log
from gmnas_cli.pipeline.runtime import Runtime
from gmnas_cli.pipeline.stage import build_trainer, run_stage, splitting_schedule_epochs
from gmnas_cli.stages.warmup import train_root


def split(rt: Runtime) -> dict:
    cfg, exp, space = rt.cfg, rt.exp, rt.space
    tree = PartitionTree.load(exp.tree_path)
    n_splits = effective_splits(cfg)
    if n_splits == 0:
        log.info("split: criterion=none (One-Shot): the root is the only leaf")
        return {"leaves": [n.id for n in tree.leaves()]}
    criterion = CRITERIA[cfg.criterion.name](cfg.criterion)
    factors = branching_list(cfg)
    warm = int(cfg.warmup_epochs)
    joint = joint_schedule(cfg)  # split_train_arch: the root's joint interval shifts every split
    base = 0 if joint is None else warm
    length, offset = (splitting_schedule_epochs(cfg), 0) if joint is None else joint
    for s in range(n_splits):
        for node in [n for n in tree.nodes if n.depth == s]:
            if not node.is_leaf:
                continue
            # The tag that trained this node: a checkpoint that fell back to `.prev` is brought to
            # its final epoch with the same seeds, so the result equals the uninterrupted one.
            trainer = build_trainer(rt, node.mask, "warmup/node0" if node.id == 0 else f"split/node{node.id}")
            ckpt = exp.node_dir(node.id) / "ckpt.pt"
            trainer.load(ckpt)
            if trainer.epoch < warm * (s + 1) + base:
                log.warning(f"split: node {node.id} checkpoint is at epoch {trainer.epoch}; training to "
                            f"epoch {warm * (s + 1) + base} again")
                if node.id == 0:
                    train_root(cfg, trainer, ckpt)
                else:
                    trainer.fit(warm * (s + 1) + base, length, train_arch=_joint(cfg, trainer), ckpt=ckpt,
                                stage="split", schedule_offset=offset)
                trainer.write_curve(exp.node_dir(node.id) / "curve.csv")
            ctx = SplitContext(trainer, space, tree, node, factors[s], s, int(cfg.seed),
                               progress_path=exp.node_dir(node.id) / f"gm_progress_{s}.json")
            decision = criterion.decide(ctx)
            if rt.logger is not None:
                rt.logger.distances("split", node.id, decision.scores, step=s)
            parent_state = load_checkpoint(exp.node_dir(node.id) / "ckpt.pt")
            children = tree.add_children(node, decision.edge, decision.groups, decision.scores,
                                         epoch=trainer.epoch)
            for child in children:  # checkpoints first, then the tree that points at them
                save_checkpoint(exp.node_dir(child.id) / "ckpt.pt", {**parent_state, "mask": child.mask})
            tree.validate(exp.tree_path)
            tree.save(exp.tree_path)
            log.info(f"split {s + 1}/{n_splits}: node {node.id} on edge {decision.edge} -> "
                     f"{' | '.join(','.join(g) for g in decision.groups)}")
        if s < n_splits - 1:  # train the children until the next split (alpha frozen)
            for child in [n for n in tree.nodes if n.depth == s + 1]:
                trainer = build_trainer(rt, child.mask, f"split/node{child.id}")
                ckpt = exp.node_dir(child.id) / "ckpt.pt"
                trainer.load(ckpt)
                trainer.fit(warm * (s + 2) + base, length, train_arch=_joint(cfg, trainer), ckpt=ckpt,
                            stage="split", schedule_offset=offset)
                trainer.write_curve(exp.node_dir(child.id) / "curve.csv")
    return {"leaves": [n.id for n in tree.leaves()]}


def _joint(cfg: DictConfig, trainer) -> bool:
    """Whether children train alpha between splits (``split_train_arch``; official GM + ProxylessNAS)."""
    return bool(cfg.split_train_arch) and trainer.algo.has_arch_params


def main(cfg: DictConfig) -> None:
    rt = run_stage(cfg, "split", split, requires=["warmup"])
    console.print(PartitionTree.load(rt.exp.tree_path).render())
