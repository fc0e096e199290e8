"""``gmnas search`` with ``algo=ofa``, one leaf: progressive shrinking inside the leaf's mask, then
evolution under the FLOPs window (docs/ofa.md; paper App. D.3).

1. Start: ``algo.leaf_start=continue`` takes the leaf's split-phase weights and finishes the kernel
   phase (``algo.kernel_epochs`` minus the epochs the split phase trained); ``full`` restarts from
   the full network (the KD teacher) and runs the whole kernel phase, as the released runs do.
2. Phases ``kernel``, ``depth0..``, ``expand0..`` (``search/<leaf>/<phase>.pt``, written every
   epoch: a killed run resumes exactly; a finished phase's checkpoint is deleted once the next phase
   is done, curves in ``curve_<phase>.csv``); each expand phase first sorts the middle channels.
3. Evolution (``gmnas_cli/algorithms/ofa/evolution.py``, state in ``search/<leaf>/evolution.json``): fitness =
   top-1 on the held-out architecture half (first ``algo.evolution.eval_images`` images) after BN
   recalibration on ``algo.evolution.bn_images`` fixed weights-half images.
4. ``result.json``: the best subnet (string, ``{ks, e, d}``), its held-out loss/accuracy (the
   leaf's validation loss that ``select.criterion=val_loss`` compares, App. D.3), params, MFLOPs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from gmnas_cli.algorithms.ofa.evolution import Evolution
from gmnas_cli.data import Split
from gmnas_cli.infra.io import checkpoint_exists, load_checkpoint, prev_path, read_json, write_json
from gmnas_cli.infra.logging import log
from gmnas_cli.infra.seeding import derive_seed
from gmnas_cli.spaces.counting import count_params
from gmnas_cli.spaces.ofa.macs import subnet_mflops
from gmnas_cli.spaces.ofa.space import OfaSupernet, Subnet, extract_subnet
from gmnas_cli.training.trainer import SupernetTrainer


@dataclass(frozen=True)
class Phase:
    name: str
    epochs: int
    lr: float
    lr_min: float
    schedule: int  # cosine length
    offset: int  # fit's schedule_offset (negative: continue a cosine that started earlier)


def leaf_phases(cfg: Any, split_epochs: int) -> list[Phase]:
    """The progressive-shrinking phases a leaf still runs (module docstring, step 1)."""
    a = cfg.algo
    total = int(a.kernel_epochs)
    done = min(int(split_epochs), total) if str(a.leaf_start) == "continue" else 0
    # The kernel phase continues the warmup/split phases' cosine (train.lr -> train.lr_min over
    # algo.kernel_epochs); the depth and expand phases each run a cosine from their lr to 0 (OFA).
    phases = [Phase("kernel", total - done, float(cfg.train.lr), float(cfg.train.lr_min), total, -done)]
    phases += [Phase(f"depth{i}", int(ep), float(lr), 0.0, int(ep), 0)
               for i, (ep, lr) in enumerate(zip(a.depth_epochs, a.depth_lr))]
    phases += [Phase(f"expand{i}", int(ep), float(lr), 0.0, int(ep), 0)
               for i, (ep, lr) in enumerate(zip(a.expand_epochs, a.expand_lr))]
    return phases


def phase_trainer(rt: Any, mask: dict, phase: Phase, teacher: dict | None, tag: str,
                  algo_cls: Callable[..., Any]) -> SupernetTrainer:
    cfg = OmegaConf.merge(rt.cfg, {"train": {"lr": phase.lr, "lr_min": phase.lr_min}})
    net = rt.space.build_supernet(mask).to(rt.device)
    algo = algo_cls(cfg.algo, rt.space, net)
    algo.phase, algo.teacher_state = phase.name, teacher
    return SupernetTrainer(net, algo, cfg, rt.halves, rt.device, tag)


def calibration_batches(split: Split, batch_size: int, images: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``images`` images of one seeded pass (no augmentation), in minibatches; the same
    for every candidate of a leaf."""
    out, left = [], min(images, len(split))
    for x, y in split.batches(batch_size, seed, augment=False):
        if left <= 0:
            break
        out.append((x[:left], y[:left]))
        left -= len(y)
    return out


@torch.no_grad()
def recalibrate_bn(net: OfaSupernet, subnet: Subnet, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Running BN statistics of ``subnet`` from scratch: the exact average over ``batches``
    (OFA ``set_running_statistics``; momentum None = cumulative average)."""
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    net.set_active(subnet)
    active = net.active_for(subnet)
    net.train()
    for x, _ in batches:
        net(x, None, active)
    for m, mom in zip(bns, saved):
        m.momentum = mom


@torch.no_grad()
def evaluate_subnet(net: OfaSupernet, subnet: Subnet, calib: list, held_out: Split, batch_size: int) -> tuple[float, float]:
    """(top-1 accuracy, mean cross-entropy) of ``subnet`` on ``held_out`` after BN recalibration."""
    recalibrate_bn(net, subnet, calib)
    net.eval()
    active = net.active_for(subnet)
    loss = torch.zeros((), dtype=torch.float64, device=held_out.x.device)  # one host sync at the end
    correct = torch.zeros((), dtype=torch.int64, device=held_out.x.device)
    n = 0
    for x, y in held_out.batches(batch_size, None):
        logits = net(x, None, active).float()
        loss += F.cross_entropy(logits, y, reduction="sum").double()
        correct += (logits.argmax(1) == y).sum()
        n += len(y)
    return round(int(correct) / max(n, 1), 8), round(float(loss) / max(n, 1), 8)


def search_leaf(rt: Any, tree: Any, leaf: Any, algo_cls: Callable[..., Any]) -> dict:
    cfg, exp, space = rt.cfg, rt.exp, rt.space
    out = exp.search_dir(leaf.id)
    result_path = out / "result.json"
    if result_path.exists():
        return read_json(result_path)
    start = time.time()
    node = load_checkpoint(exp.node_dir(leaf.id) / "ckpt.pt")
    teacher = node["algo"].get("teacher")
    weights = node["model"] if str(cfg.algo.leaf_start) == "continue" or teacher is None else teacher
    phases = leaf_phases(cfg, int(node["epoch"]))
    # Resume at the latest phase with a checkpoint; earlier ones are complete (and deleted).
    started = [i for i, p in enumerate(phases) if checkpoint_exists(out / f"{p.name}.pt")]
    trainer = None
    for i in range(started[-1] if started else 0, len(phases)):
        phase = phases[i]
        trainer = phase_trainer(rt, leaf.mask, phase, teacher, f"search/leaf{leaf.id}/{phase.name}", algo_cls)
        ckpt = out / f"{phase.name}.pt"
        if checkpoint_exists(ckpt):
            trainer.load(ckpt)
        else:
            trainer.net.load_state_dict(weights)
            if phase.name.startswith("expand"):  # OFA: sort channels by importance before each expand phase
                for block in trainer.net.blocks:
                    block.reorganize_middle(int(phase.name[len("expand"):]))
        # No per-epoch supernet validation: the leaf is judged by its evolved subnet (below).
        trainer.fit(phase.epochs, phase.schedule, train_arch=False, ckpt=ckpt, evaluate=False, stage="search",
                    schedule_offset=phase.offset)
        if not ckpt.exists():
            trainer.save(ckpt)
        trainer.write_curve(out / f"curve_{phase.name}.csv")
        for done in phases[:i]:  # keep one phase's checkpoint per leaf (each holds model + teacher)
            for path in (out / f"{done.name}.pt", prev_path(out / f"{done.name}.pt")):
                path.unlink(missing_ok=True)
        weights = trainer.net.state_dict()
    assert trainer is not None
    net: OfaSupernet = trainer.net  # type: ignore[assignment]
    ev, seed, bs = cfg.algo.evolution, int(cfg.seed), int(cfg.train.batch_size)
    tag = f"search/leaf{leaf.id}"
    train_half, held = rt.halves
    calib = calibration_batches(train_half, bs, int(ev.bn_images), derive_seed(seed, tag, "bn"))
    if int(ev.eval_images) > 0:
        held = Split(held.x[: int(ev.eval_images)], held.y[: int(ev.eval_images)], held.data)
    image_size = int(rt.data.image_size)
    evo = Evolution(space, leaf.mask, ev, image_size, lambda s: evaluate_subnet(net, s, calib, held, bs), seed, tag,
                    out / "evolution.json")
    evo_start = time.time()
    best = evo.run()
    evo_seconds = time.time() - evo_start
    subnet = Subnet(**best["subnet"])
    arch = space.subnet_to_arch(subnet)
    static = extract_subnet(net, subnet)
    params_m = count_params(static) / 1e6
    write_json(out / "subnet.json", {**subnet.to_json(), "image_size": image_size})
    result = {"leaf": leaf.id, "arch": space.arch_to_str(arch), "arch_ops": arch, "subnet": subnet.to_json(),
              "val_loss": float(best["loss"]), "val_acc": float(best["acc"]),
              "mflops": round(subnet_mflops(space, subnet, image_size), 4), "params_m": round(params_m, 6),
              "image_size": image_size,
              "evolution": {"evaluated": int(best["evaluated"]), "iterations": int(best["iterations"]),
                            "seconds": round(evo_seconds, 3)},  # Table 5's search cost: evolution only
              "epochs": sum(p.epochs for p in phases), "seconds": round(time.time() - start, 3), "alpha": None}
    write_json(result_path, result)
    log.info(f"search: leaf {leaf.id} -> {result['arch']} ({result['mflops']:.2f} MFLOPs, {params_m:.3f}M params, "
             f"held-out acc {result['val_acc']:.4f}, loss {result['val_loss']:.4f})")
    return result
