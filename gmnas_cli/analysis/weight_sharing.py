"""Paper Table 2 (section 3.2, Appendix B.2): is weight sharing more harmful between networks whose
gradients disagree at the shared weights?

For each of ``analyze.archs`` target architectures A (uniform, connected paths of the space), one
edge e is drawn at random and every other op o' of e gives a partner B_o' that differs from A on e
only. Each pair {A, B_o'} is trained from the same initial weights with RSPS restricted to the pair
(each minibatch trains A or B_o' with probability 1/2, train.* settings, ``analyze.epochs`` epochs
on the weights half). Afterwards the gradient similarity cos(g_A, g_B) at the shared weights (every
parameter except edge e's, ``space.shared_parameters``) is computed on each of ``analyze.batches``
training minibatches and averaged (App. B.2: "averaging over 100 mini-batches"), and A's loss is
measured on the weights half (train loss) and on the held-out half (valid loss; never the test
split). The partner with the highest similarity is B (similar), the lowest C (dissimilar); the
table reports the mean over targets of A's losses and the similarity in both cases.

Each pair's result is stored in ``analyze.out`` under a key of everything it depends on, and
pair training checkpoints every epoch, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from gmnas_cli.algorithms.rsps import Rsps, path_connected
from gmnas_cli.experiment.directory import config_hash
from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.infra.io import read_json, write_json
from gmnas_cli.infra.logging import log
from gmnas_cli.infra.seeding import derive_seed, generator, seeded_init
from gmnas_cli.spaces import Arch, Supernet
from gmnas_cli.training.trainer import SupernetTrainer

DEGENERATE_SPREAD = 1e-6  # similarity spread below which a target's partners are indistinguishable


class PairSampling(Rsps):
    """RSPS over exactly two architectures: each minibatch trains one of them, uniformly."""

    pair: tuple[Arch, Arch]

    def sample_path(self, gen: torch.Generator) -> Arch:
        return self.pair[int(torch.randint(2, (1,), generator=gen))]


_EDGE = re.compile(r"(\d+)<-(\d+)")


def edge_live(arch: Arch, edge: str) -> bool:
    """Whether ``edge`` (``j<-i``) can change A's output: node i is reached from the input and node j
    reaches the output through non-`none` edges of ``arch``. On a dead edge every op sees a zero
    input or feeds nothing, so all partners of A have the same gradients (similarity 1)."""
    m = _EDGE.fullmatch(edge)
    if m is None:
        return True
    links = [(int(g.group(2)), int(g.group(1))) for e, op in arch.items()
             if op != "none" and e != edge and (g := _EDGE.fullmatch(e)) is not None]
    out = max(max(int(g.group(1)), int(g.group(2))) for g in map(_EDGE.fullmatch, arch) if g is not None)

    def reach(start: int, forward: bool) -> set[int]:
        seen, frontier = {start}, [start]
        while frontier:
            n = frontier.pop()
            for a, b in links:
                nxt = b if forward else a
                if (a if forward else b) == n and nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        return seen

    dst, src = int(m.group(1)), int(m.group(2))
    return src in reach(0, True) and dst in reach(out, False)


def sample_targets(space: Any, k: int, gen: torch.Generator) -> list[tuple[Arch, str]]:
    """``k`` connected target architectures, each with a live edge (``edge_live``) whose op its
    partners change; a dead edge is redrawn with the architecture, so a target whose first draw is
    live is the same as before the check."""
    targets = []
    edges = space.edge_names()
    for _ in range(k):
        for _ in range(10_000):
            for _ in range(10_000):
                arch = space.sample_arch(space.full_mask(), gen)
                if path_connected(arch):
                    break
            edge = edges[int(torch.randint(len(edges), (1,), generator=gen))]
            if edge_live(arch, edge):
                break
        targets.append((arch, edge))
    return targets


def _flat_grad(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> torch.Tensor:
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])


def _cycle(split: Any, batch_size: int, seed: int, tag: str, augment: bool,
           count: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` training minibatches: passes over ``split`` in a fresh seeded order each (the first
    pass is the one-pass order), so ``analyze.batches`` may exceed the minibatches of one pass."""
    done, p = 0, 0
    while done < count:
        s = derive_seed(seed, tag, "similarity") if p == 0 else derive_seed(seed, tag, "similarity", p)
        before = done
        for xy in split.batches(batch_size, s, augment, True):
            yield xy
            done += 1
            if done == count:
                return
        if done == before:
            raise ConfigError(f"analyze: train.batch_size={batch_size} exceeds the {len(split)} images of the "
                              f"weights half; lower train.batch_size")
        p += 1


def gradient_similarity(trainer: SupernetTrainer, a: Arch, b: Arch, edge: str, batches: int, seed: int,
                        tag: str) -> float:
    """Mean over ``batches`` training minibatches of cos(g_a, g_b) at the weights shared across ``edge``."""
    net, space = trainer.net, trainer.net.space
    shared = space.shared_parameters(net, edge)
    t = trainer.cfg.train
    paths = [(w.to(trainer.device), active) for w, active in (space.arch_weights(p) for p in (a, b))]
    buffers = {k: v.clone() for k, v in net.state_dict().items() if "running" in k or "num_batches" in k}
    net.train()
    total, n = 0.0, 0
    for x, y in _cycle(trainer.train_split, int(t.batch_size), seed, tag, bool(t.augment), batches):
        ga, gb = (_flat_grad(F.cross_entropy(net(x, w, active).float(), y), shared) for w, active in paths)
        total += float(F.cosine_similarity(ga, gb, dim=0, eps=1e-12))
        n += 1
    net.load_state_dict({**net.state_dict(), **buffers})  # BN statistics as before scoring
    return total / max(n, 1)


@torch.no_grad()
def path_loss(trainer: SupernetTrainer, arch: Arch, split: Any) -> float:
    """Cross-entropy of one architecture (one-hot path, eval mode) over a whole split."""
    w, active = trainer.net.space.arch_weights(arch)
    w = w.to(trainer.device)
    trainer.net.eval()
    bs = max(int(trainer.cfg.train.batch_size), 256)
    total, n = 0.0, 0
    for x, y in split.batches(bs, None):
        total += float(F.cross_entropy(trainer.net(x, w, active).float(), y, reduction="sum"))
        n += len(y)
    trainer.net.train()
    return total / max(n, 1)


def _pair_key(rt: Any, target: int, a: str, b: str, edge: str) -> str:
    cfg = rt.cfg
    return config_hash({"target": target, "a": a, "b": b, "edge": edge, "seed": int(cfg.seed),
                        **{k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("train", "dataset", "space")},
                        "epochs": int(cfg.analyze.epochs), "batches": int(cfg.analyze.batches)})


def train_pair(rt: Any, target: int, a: Arch, b: Arch, edge: str, out: Path) -> dict[str, Any]:
    """Train {a, b} together with RSPS and measure a's losses and the gradient similarity (cached)."""
    cfg, space = rt.cfg, rt.space
    sa, sb = space.arch_to_str(a), space.arch_to_str(b)
    key = _pair_key(rt, target, sa, sb, edge)
    path = out / "pairs" / f"t{target}-{b[edge]}.json"
    cached = read_json(path) if path.exists() else None
    if cached is not None and cached.get("key") == key:
        return cached
    mask = {e: sorted({a[e], b[e]}, key=space.ops.index) for e in space.edge_names()}
    tag = f"analyze/t{target}/{b[edge]}"
    with seeded_init(int(cfg.seed), "analyze", target, "init"):  # all partners of A: one init
        net: Supernet = space.build_supernet(mask)
    net = net.to(rt.device)
    algo = PairSampling(cfg.algo, space, net)
    algo.pair = (a, b)
    trainer = SupernetTrainer(net, algo, cfg, rt.halves, rt.device, tag)
    ckpt = out / "pairs" / f"t{target}-{b[edge]}-{key}.pt"
    if ckpt.exists():
        trainer.load(ckpt)
    epochs = int(cfg.analyze.epochs)
    trainer.fit(epochs, epochs, train_arch=False, ckpt=ckpt, evaluate=False, stage="analyze")
    result = {"key": key, "target": target, "arch_a": sa, "arch_b": sb, "edge": edge, "op_a": a[edge],
              "op_b": b[edge], "train_loss": path_loss(trainer, a, rt.halves[0]),
              "valid_loss": path_loss(trainer, a, rt.halves[1]),
              "similarity": gradient_similarity(trainer, a, b, edge, int(cfg.analyze.batches), int(cfg.seed), tag)}
    write_json(path, result)
    for p in (ckpt, ckpt.with_name(ckpt.name + ".prev")):
        if p.exists():
            p.unlink()
    log.info(f"analyze: target {target} edge {edge} {a[edge]} + {b[edge]}: similarity {result['similarity']:.4f} "
             f"train loss {result['train_loss']:.4f} valid loss {result['valid_loss']:.4f}")
    return result


def analyze_dir(cfg: Any) -> Path:
    """``analyze.out``, or ``<out_dir>/analyze`` when it is empty."""
    return Path(str(cfg.analyze.out)) if str(cfg.analyze.out) else Path(str(cfg.out_dir)) / "analyze"


def analyze(rt: Any) -> dict[str, Any]:
    """Table 2's figures: per target the similar (B) and dissimilar (C) partner, and means over targets."""
    cfg, space = rt.cfg, rt.space
    if str(cfg.space.name) != "nb201":  # paper 3.2: targets sampled from NAS-Bench-201, one op per edge
        raise ConfigError(f"analyze: paper Table 2 is defined on NAS-Bench-201 cells; space={cfg.space.name} "
                          "is not supported (use space=nb201 or space=nb201_4ops)")
    if len(space.ops) < 3:
        raise ConfigError(f"analyze: space.ops={list(space.ops)}: needs at least 3 ops (a target's op and two "
                          "partners on the changed edge)")
    out = analyze_dir(cfg)
    gen = generator(int(cfg.seed), "analyze", "targets")
    rows = []
    for k, (a, edge) in enumerate(sample_targets(space, int(cfg.analyze.archs), gen)):
        partners = [{**a, edge: op} for op in space.ops if op != a[edge]]
        pairs = [train_pair(rt, k, a, b, edge, out) for b in partners]
        similar = max(pairs, key=lambda p: p["similarity"])
        dissimilar = min(pairs, key=lambda p: p["similarity"])
        # all partners alike (e.g. every similarity 1.0000): B and C are not distinguishable
        degenerate = similar["similarity"] - dissimilar["similarity"] < DEGENERATE_SPREAD
        if degenerate:
            log.warning(f"analyze: target {k} edge {edge}: every partner has similarity "
                        f"{similar['similarity']:.4f}; left out of the means")
        rows.append({"target": k, "arch": space.arch_to_str(a), "edge": edge, "similar": similar,
                     "dissimilar": dissimilar, "degenerate": degenerate, "pairs": pairs})
    used = [r for r in rows if not r["degenerate"]]
    summary = {case: {m: _mean([r[case][m] for r in used]) for m in ("similarity", "train_loss", "valid_loss")}
               for case in ("similar", "dissimilar")}
    result = {"dataset": str(cfg.dataset.name), "space": str(cfg.space.name), "archs": len(used),
              "degenerate": len(rows) - len(used),
              "epochs": int(cfg.analyze.epochs), "batches": int(cfg.analyze.batches), "mean": summary,
              "targets": rows}
    write_json(out / "analyze.json", result)
    return result


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


__all__ = ["PairSampling", "analyze", "analyze_dir", "edge_live", "gradient_similarity", "path_loss", "sample_targets", "train_pair"]
