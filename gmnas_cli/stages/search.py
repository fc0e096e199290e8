"""``gmnas search``: run the base algorithm on every leaf (or the ``leaf=K``-th one) independently.

Each leaf restarts from a seeded initialisation of its own after a split phase (``restart=true``,
paper 3.4; ablation 5.1; official: a new model per leaf), or continues from its split-phase
weights otherwise; One-Shot
(no split) continues from the warmed-up root. Per leaf: ``search/<node id>/ckpt.pt`` every epoch,
``curve.csv``, and ``result.json`` with the derived architecture and supernet validation metrics.
Leaves write only inside their own folder, so ``-m leaf=0,1,2,3`` jobs never collide.
"""

from __future__ import annotations

from omegaconf import DictConfig

from gmnas_cli.algorithms import ALGORITHMS
from gmnas_cli.config.derived import effective_splits, joint_schedule, search_schedule_epochs
from gmnas_cli.experiment.state import read_result
from gmnas_cli.experiment.tree import Node, PartitionTree
from gmnas_cli.infra import distributed
from gmnas_cli.infra.errors import StageError
from gmnas_cli.infra.io import load_checkpoint, write_json
from gmnas_cli.infra.logging import log
from gmnas_cli.infra.seeding import derive_seed, generator
from gmnas_cli.pipeline.runtime import Runtime
from gmnas_cli.pipeline.stage import build_trainer, run_stage


def search_leaf(rt: Runtime, tree: PartitionTree, leaf: Node) -> dict:
    cfg, exp, space = rt.cfg, rt.exp, rt.space
    custom = ALGORITHMS[cfg.algo.name].search_leaf(rt, tree, leaf)
    if custom is not None:  # algorithms with their own leaf pipeline (OFA: shrinking + evolution)
        return custom
    out = exp.search_dir(leaf.id)
    result_path = out / "result.json"
    if result_path.exists():
        return read_result(result_path, [leaf.id], space.str_to_arch)
    restarted = bool(cfg.restart) and effective_splits(cfg) > 0
    trainer = build_trainer(rt, leaf.mask, f"search/leaf{leaf.id}", init=leaf.id if restarted else "root")
    ckpt = out / "ckpt.pt"
    if ckpt.exists():
        trainer.load(ckpt)
    elif not restarted:
        # No restart: start from the leaf's split-phase (or warmed-up) weights, fresh alpha/optimizer;
        # after a joint split phase (split_train_arch) with its alpha and both optimizers as well.
        carry = bool(cfg.split_train_arch) and effective_splits(cfg) > 0
        trainer.load_state_dict(load_checkpoint(exp.node_dir(leaf.id) / "ckpt.pt"), weights_only=not carry)
        trainer.epoch, trainer.history = 0, []
    epochs = int(cfg.search_epochs)
    # lr: train.search_schedule; temperature: restarted over the search epochs (official
    # sub_model.temp_scheduler = TempScheduler(total_epoch - end_epoch)). After a joint split phase
    # (split_train_arch, restart=false) the leaves continue the joint cosine instead.
    joint = joint_schedule(cfg) if not cfg.restart else None
    length, offset = (search_schedule_epochs(cfg), 0) if joint is None else (joint[0], epochs - joint[0])
    trainer.fit(epochs, length, train_arch=trainer.algo.has_arch_params, ckpt=ckpt, stage="search",
                temperature_epochs=epochs, schedule_offset=offset)
    if not trainer.history:  # search_epochs=0: still report the supernet's validation metrics
        val_loss, val_acc = trainer.evaluate()
    else:
        val_loss, val_acc = trainer.history[-1]["val_loss"], trainer.history[-1]["val_acc"]
    # Derivations that score sampled paths (RSPS) read the architecture half, seeded per leaf.
    seed = int(cfg.seed)
    bs = trainer.algo.derive_batch_size(int(cfg.train.batch_size))
    arch = trainer.algo.derive(
        lambda: map(trainer._prep, trainer.arch_split.batches(bs, derive_seed(seed, trainer.tag, "derive"))),
        gen=generator(seed, trainer.tag, "derive"))
    if not space.arch_in_mask(arch, leaf.mask):
        raise StageError(f"search: leaf {leaf.id} derived {arch} outside its mask")
    trainer.write_curve(out / "curve.csv")
    result = {"leaf": leaf.id, "arch": space.arch_to_str(arch), "arch_ops": arch,
              **space.arch_metrics(arch),
              "val_loss": float(val_loss), "val_acc": float(val_acc), "epochs": epochs,
              "seconds": round(sum(h["seconds"] for h in trainer.history), 3),
              "alpha": trainer.algo.alpha.detach().cpu().tolist() if trainer.algo.has_arch_params else None}
    for name, obj in space.arch_files(arch).items():  # e.g. ProxylessNAS's net.config
        write_json(out / name, obj)
    write_json(result_path, result)
    log.info(f"search: leaf {leaf.id} -> {result['arch']} (val_loss {val_loss:.4f}, val_acc {val_acc:.4f})")
    return result


def search(rt: Runtime) -> dict:
    cfg, exp = rt.cfg, rt.exp
    tree = PartitionTree.load(exp.tree_path)
    leaves = tree.leaves()
    if cfg.leaf is not None:  # leaf=k: the k-th leaf, so `-m leaf=0,1,2,3` covers 4 leaves
        leaves = [tree.leaf(int(cfg.leaf))]
    for leaf in leaves:
        search_leaf(rt, tree, leaf)
    remaining = [n.id for n in tree.leaves() if not (exp.search_dir(n.id) / "result.json").exists()]
    remaining = distributed.agree(remaining)  # data parallel: sibling leaf jobs write beside us
    if remaining:
        log.info(f"search: leaves {remaining} still to search; the stage completes with the last one")
        return {"incomplete": True}
    return {"leaves": [n.id for n in tree.leaves()]}


def main(cfg: DictConfig) -> None:
    requires = ["warmup", "split"] if effective_splits(cfg) > 0 else ["warmup"]
    run_stage(cfg, "search", search, requires=requires)
