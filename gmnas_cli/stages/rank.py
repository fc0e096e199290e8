"""``gmnas rank``: ranking correlation of sub-supernet estimates against a benchmark (paper 5.2).

Architectures: ``rank.samples`` drawn uniformly inside the root's mask (row ``all``), plus, for
each ``p`` in ``rank.top``, the top ``p`` percent of the searched space's own population: the
benchmark architectures inside the root's mask, ranked by the searched data set's figure (rows
``top_<p>``; on the 4-op NB201 space, 4096 architectures: top 0.2/0.5/1 % = 8/20/41, as paper
Table 7 counts them). Each is estimated by the sub-supernet that owns it
(the leaf whose mask contains every op of the architecture, after search) on the whole held-out
architecture half by default (``rank.batches=0``; ``>0`` caps the minibatches), never the test
split. Spearman and Kendall correlations against the benchmark metric, with sample sizes, go to
``ranking.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from omegaconf import DictConfig
from rich.table import Table
from scipy import stats

from gmnas_cli.benchmarks import load_benchmark
from gmnas_cli.benchmarks.metrics import dataset_metric
from gmnas_cli.config.derived import option
from gmnas_cli.experiment.tree import Node, PartitionTree
from gmnas_cli.infra.errors import ConfigError, StageError
from gmnas_cli.infra.io import load_checkpoint, write_json
from gmnas_cli.infra.logging import console, log, track
from gmnas_cli.infra.seeding import generator
from gmnas_cli.pipeline.deps import bring_predecessors, missing_predecessors
from gmnas_cli.pipeline.runtime import Runtime
from gmnas_cli.pipeline.stage import build_trainer
from gmnas_cli.report.groups import DATASET_NAMES
from gmnas_cli.spaces import Arch
from gmnas_cli.training.trainer import SupernetTrainer


def owner(tree: PartitionTree, arch: Arch) -> Node:
    """The unique leaf whose mask contains ``arch``."""
    owners = [n for n in tree.leaves() if all(op in n.mask[e] for e, op in arch.items())]
    if len(owners) != 1:
        raise StageError(f"rank: {len(owners)} leaves own architecture {arch}; the tree is inconsistent")
    return owners[0]


@torch.no_grad()
def estimate(trainer: SupernetTrainer, arch: Arch, batches: Iterable, how: str) -> float:
    """Supernet estimate of one architecture (one-hot path) on fixed validation batches."""
    weights, active = trainer.net.space.arch_weights(arch)
    weights = weights.to(trainer.device)
    trainer.net.eval()
    loss, correct, n = 0.0, 0, 0
    for x, y in batches:
        logits = trainer.net(x, weights, active)
        loss += float(trainer.loss_fn(logits, y)) * len(y)
        correct += int((logits.argmax(1) == y).sum())
        n += len(y)
    return correct / n if how == "val_acc" else -loss / n


def correlations(est: list[float], truth: list[float]) -> tuple[float | None, float | None]:
    if len(est) < 3:
        return None, None
    rho = stats.spearmanr(est, truth).statistic
    tau = stats.kendalltau(est, truth).statistic
    clean = [None if v != v else round(float(v), 6) for v in (rho, tau)]  # NaN: constant input
    return clean[0], clean[1]


def space_population(space: Any, root_mask: Any, table: list[tuple[str, float]]) -> list[str]:
    """The benchmark's architectures that lie in the searched space (inside ``root_mask``), best first."""
    return [a for a, _ in table if space.arch_in_mask(space.str_to_arch(a), root_mask)]


def top_percent(population: list[str], p: float) -> list[str]:
    """The best ``p`` % of ``population`` (at least one): 4096 archs -> 8 / 20 / 41 for 0.2 / 0.5 / 1 %."""
    return population[:max(1, int(round(len(population) * p / 100.0)))]


def held_out_batches(rt: Runtime) -> Callable[[], Iterator]:
    """Fixed minibatches of the architecture half: all of it (``rank.batches=0``) or the first ``k``."""
    cfg = rt.cfg
    limit = int(cfg.rank.batches)
    bs = int(cfg.train.batch_size) if limit else max(int(cfg.train.batch_size), 256)  # eval mode: size-free

    def batches() -> Iterator:
        it = rt.halves[1].batches(bs, None)
        return it if not limit else (b for _, b in zip(range(limit), it))

    return batches


def rank(cfg: DictConfig) -> dict[str, Any]:
    rt = Runtime(cfg)
    exp, space = rt.exp, rt.space
    bench = load_benchmark(cfg.benchmark)
    if bench is None:
        raise ConfigError("rank needs a benchmark: benchmark=nb201 benchmark.path=... (or nb301_surrogate)")
    missing = missing_predecessors(exp, ["search"])
    if missing and option(cfg.deps) != "never":
        bring_predecessors(cfg, exp, "rank", missing)
    exp.require("search", "rank")

    # the searched data set's figure: cifar10_test on a CIFAR-100 search -> cifar100_test
    metric = dataset_metric(str(cfg.benchmark.metric or bench.metrics[0]), str(cfg.dataset.name), bench.metrics)
    tree = PartitionTree.load(exp.tree_path)
    root_mask = tree[0].mask
    gen = generator(int(cfg.seed), "rank")
    sets: dict[str, list[str]] = {"all": []}
    seen: set[str] = set()
    for _ in range(int(cfg.rank.samples) * 5):
        if len(sets["all"]) >= int(cfg.rank.samples):
            break
        s = space.arch_to_str(space.sample_arch(root_mask, gen))
        if s not in seen:
            seen.add(s)
            sets["all"].append(s)
    ranked = bench.ranked(metric)
    population = None
    if ranked is not None:
        pop = space_population(space, root_mask, ranked)
        population = len(pop)
        for p in cfg.rank.top:
            sets[f"top_{p:g}"] = top_percent(pop, float(p))
    else:
        log.info(f"rank: benchmark {bench.name} is not a full table; only the sampled row is reported")
    archs = sorted({a for v in sets.values() for a in v})
    val_batches = held_out_batches(rt)
    trainers: dict[int, SupernetTrainer] = {}
    est: dict[str, float] = {}
    truth: dict[str, float] = {}
    for a in track(archs, "rank: estimating architectures", len(archs)):
        arch = space.str_to_arch(a)
        leaf = owner(tree, arch)
        if leaf.id not in trainers:
            tr = build_trainer(rt, leaf.mask, f"rank/leaf{leaf.id}")
            tr.load_state_dict(load_checkpoint(exp.search_dir(leaf.id) / "ckpt.pt"), weights_only=True)
            trainers[leaf.id] = tr
        est[a] = estimate(trainers[leaf.id], arch, val_batches(), cfg.rank.estimate)
        truth[a] = bench.query(a)[metric]
    out: dict[str, Any] = {"metric": metric, "estimate": cfg.rank.estimate, "dataset": str(cfg.dataset.name),
                           "population": population, "held_out_images": sum(len(y) for _, y in val_batches()),
                           "spearman": {}, "kendall": {}, "n": {}}
    for name, members in sets.items():
        rho, tau = correlations([est[a] for a in members], [truth[a] for a in members])
        out["spearman"][name], out["kendall"][name], out["n"][name] = rho, tau, len(members)
    write_json(exp.root / "ranking.json", out)
    show(out)
    return out


def show(out: dict[str, Any]) -> None:
    ds = DATASET_NAMES.get(out.get("dataset", ""), out.get("dataset", "?"))
    pop = f"; top sets of {out['population']} architectures in the space" if out.get("population") else ""
    table = Table(title=f"ranking correlation. Data set: {ds}; metric: {out['estimate']} on "
                        f"{out.get('held_out_images', '?')} held-out images vs {out['metric']}{pop}")
    for col in ("set", "n", "spearman", "kendall"):
        table.add_column(col)
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    for name in out["n"]:
        table.add_row(name, str(out["n"][name]), fmt(out["spearman"][name]), fmt(out["kendall"][name]))
    console.print(table)
    for name in out["n"]:
        print(f"{name}: n={out['n'][name]} spearman={fmt(out['spearman'][name])} kendall={fmt(out['kendall'][name])}")


def main(cfg: DictConfig) -> None:
    rank(cfg)
