"""Performance measurements behind ``gmnas bench``.

* Throughput: full DARTS first-order search steps exactly as the trainer runs them
  (``SupernetTrainer.train_step``): an architecture step on one minibatch (forward, backward, Adam
  on alpha) and a weight step on another (forward, backward, gradient clipping, SGD), on synthetic
  3-channel images of ``bench.image_size`` with 10 classes. images/s = 2 * batch / step time (a
  step trains on both minibatches).
* ``bench.reference=xautodl``: the same for xautodl's NAS-Bench-201 ``DARTS-V1`` supernet
  (``get_cell_based_tiny_net``: C, N, max_nodes from ``space``, the space's ops, affine=False,
  track_running_stats=False) with the same minibatches, optimizers and hyper-parameters, and the
  step of xautodl's ``exps/NAS-Bench-201-algos/DARTS-V1.py`` (weight step, then arch step, with
  its per-step ``loss.item()`` records). Steps alternate ours/reference in ABBA order; medians.
* GM scoring: one edge's scoring on ``bench.gm_probe_batches`` minibatches at the configured size,
  extrapolated to a leaf split (``criterion.batches`` x candidate edges); and a full small split,
  measured, on a proxy supernet (``bench.gm_*``): ``criterion.early_stop`` off and on, with the
  decisions compared.
* GM memory per rank (``bench.gm_shards``): peak memory of one edge's scoring on one minibatch cut
  into k shards, one at a time as one of k data-parallel ranks scores it.
* Peak memory: CUDA ``torch.cuda.max_memory_allocated`` over the timed steps (absolute); CPU the
  peak resident set size above the level before the first (warm-up) step, read from ``VmHWM``
  after resetting it through ``/proc/self/clear_refs`` (gradients, optimizer state, activations
  and temporaries; falls back to the ``ru_maxrss`` increase where that file is not writable).
"""

from __future__ import annotations

import copy
import csv
import ctypes
import gc
import re
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, open_dict

from gmnas_cli.algorithms import build_algorithm
from gmnas_cli.bench.gm import compare_split, xautodl_net
from gmnas_cli.bench.paths import grouping_times, has_grouped_cells, op_batching_times
from gmnas_cli.bench.schedule import time_schedule
from gmnas_cli.config.derived import branching_list
from gmnas_cli.criteria import SplitContext
from gmnas_cli.criteria.gm.criterion import GradientMatching
from gmnas_cli.criteria.gm.fast import fast_op_gradients
from gmnas_cli.criteria.gm.scoring import EdgeScorer, gm_minibatches
from gmnas_cli.data.base import ImageData, Split
from gmnas_cli.experiment.tree import PartitionTree
from gmnas_cli.infra import distributed
from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.infra.seeding import generator, seeded_init
from gmnas_cli.spaces import SearchSpace, build_space
from gmnas_cli.training.trainer import SupernetTrainer

Batch = tuple[torch.Tensor, torch.Tensor]
NUM_CLASSES, IN_CHANNELS = 10, 3


@dataclass
class Row:
    """One line of the bench table and CSV."""

    metric: str
    impl: str
    value: float
    unit: str
    detail: str = ""


# -- inputs -------------------------------------------------------------------------------------
def synthetic_data(n_train: int, image_size: int, seed: int) -> ImageData:
    """Random 3-channel uint8 images with a class-dependent pattern (learnable), 10 classes."""
    gen = torch.Generator().manual_seed(seed)
    shape = (IN_CHANNELS, image_size, image_size)
    patterns = torch.randn(NUM_CLASSES, *shape, generator=gen)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(NUM_CLASSES, (n,), generator=gen)
        x = 128.0 + 40.0 * torch.randn(n, *shape, generator=gen) + 40.0 * patterns[y]
        return x.clamp(0, 255).to(torch.uint8), y

    tx, ty = make(n_train)
    vx, vy = make(max(n_train // 8, 1))
    return ImageData(tx, ty, vx, vy, NUM_CLASSES, mean=(0.5,) * 3, std=(0.25,) * 3)


def fixed_batches(halves: tuple[Split, Split], batch_size: int, seed: int) -> tuple[Batch, Batch]:
    """One (weights-half, architecture-half) pair of normalised minibatches, reused every step."""
    w = next(halves[0].batches(batch_size, seed, augment=False, drop_last=True))
    a = next(halves[1].batches(batch_size, seed + 1, augment=False, drop_last=True))
    return w, a


def bench_config(cfg: DictConfig, **space: Any) -> DictConfig:
    """A copy of ``cfg`` with the bench's batch size (and optional ``space`` overrides)."""
    c = copy.deepcopy(cfg)
    with open_dict(c):
        c.train.batch_size = int(cfg.bench.batch_size)
        for k, v in space.items():
            c.space[k] = v
    return c


# -- our supernet --------------------------------------------------------------------------------
def build_ours(cfg: DictConfig, device: torch.device, data: ImageData) -> tuple[SupernetTrainer, SearchSpace]:
    """The full-mask supernet of ``cfg.space`` (3 channels, 10 classes), its algorithm and trainer."""
    space = build_space(cfg.space, NUM_CLASSES, IN_CHANNELS)
    with seeded_init(int(cfg.seed), "init"):
        net = space.build_supernet(space.full_mask())
    net = net.to(device)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    algo = build_algorithm(cfg.algo, space, net)
    trainer = SupernetTrainer(net, algo, cfg, data.to(device).halves(), device, "bench")
    trainer.net.train()
    return trainer, space


def ours_step(trainer: SupernetTrainer, batches: tuple[Batch, Batch]) -> Callable[[], None]:
    """A closure running one search step of our trainer (arch step only if the algorithm has one)."""
    gen = generator(0, "bench", "path")
    w_batch, a_batch = trainer._prep(batches[0]), trainer._prep(batches[1])
    arch = a_batch if trainer.algo.has_arch_params else None

    def step() -> None:
        trainer.train_step(w_batch, arch, gen, "bench")

    return step


# -- the xautodl reference -----------------------------------------------------------------------
def xautodl_step(cfg: DictConfig, device: torch.device, batches: tuple[Batch, Batch]) -> Callable[[], None]:
    """xautodl's NB201 DARTS-V1 supernet and its first-order search step (``DARTS-V1.py``)."""
    with seeded_init(int(cfg.seed), "init"):
        net = xautodl_net(cfg, device, NUM_CLASSES)
    t, a = cfg.train, cfg.algo
    w_opt = torch.optim.SGD(net.get_weights(), lr=t.lr, momentum=t.momentum, nesterov=t.nesterov,
                            weight_decay=t.weight_decay)
    a_opt = torch.optim.Adam(net.get_alphas(), lr=a.arch_lr, betas=tuple(a.arch_betas),
                             weight_decay=a.arch_weight_decay)
    (xw, yw), (xa, ya) = batches
    clip = float(t.grad_clip)
    records: list[float] = []

    def step() -> None:
        w_opt.zero_grad()
        _, logits = net(xw)
        base_loss = F.cross_entropy(logits, yw)
        base_loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        w_opt.step()
        records.append(base_loss.item())
        a_opt.zero_grad()
        _, logits = net(xa)
        arch_loss = F.cross_entropy(logits, ya)
        arch_loss.backward()
        a_opt.step()
        records.append(arch_loss.item())

    return step


# -- timing and memory ---------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall seconds of ``fn()`` (device work included)."""
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _status_kib(field: str) -> int | None:
    try:
        m = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


class PeakMemory:
    """Peak memory of the code run inside ``with``: see the module docstring for what is counted."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.mib = float("nan")
        self.kind = ""

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.kind = "MiB max_memory_allocated"
            return self
        gc.collect()
        try:  # hand freed heap pages back so that the next model's growth shows in the RSS
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
        self.base = _status_kib("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.kind = "MiB peak RSS delta (VmHWM)"
        except OSError:
            self.base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self.kind = "MiB ru_maxrss delta (lower bound)"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.mib = torch.cuda.max_memory_allocated(self.device) / 2**20
        elif "VmHWM" in self.kind:
            self.mib = ((_status_kib("VmHWM") or 0) - (self.base or 0)) / 1024
        else:
            self.mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self.base) / 1024


def compare_throughput(steps: dict[str, Callable[[], None]], device: torch.device, warmup: int,
                       n_steps: int) -> dict[str, dict[str, Any]]:
    """Warm up each implementation, then time ``n_steps`` single steps each, alternating in ABBA
    order; returns per implementation the step times and its peak memory."""
    names = list(steps)
    out: dict[str, dict[str, Any]] = {n: {"times": []} for n in names}
    for n in names:
        if device.type != "cuda":
            with PeakMemory(device) as mem:
                for _ in range(max(warmup, 1)):
                    steps[n]()
            out[n]["memory"] = mem
        else:
            for _ in range(warmup):
                timed(steps[n], device)
    for i in range(n_steps):
        order = names if i % 2 == 0 else names[::-1]
        for n in order:
            if device.type == "cuda" and i == 0:
                with PeakMemory(device) as mem:
                    out[n]["times"].append(timed(steps[n], device))
                out[n]["memory"] = mem
            else:
                out[n]["times"].append(timed(steps[n], device))
    return out


# -- GM scoring ----------------------------------------------------------------------------------
def split_context(trainer: SupernetTrainer, space: SearchSpace, cfg: DictConfig) -> Any:
    """A SplitContext for the root of a fresh partition tree (the first split)."""

    tree = PartitionTree.with_root(space.full_mask(), space=space.name, ops=list(space.ops),
                                   edges=list(space.edges))
    try:
        b = branching_list(cfg)[0]
    except (ConfigError, IndexError):
        b = 2
    return SplitContext(trainer, space, tree, tree[0], int(b), 0, int(cfg.seed))


def gm_probe(trainer: SupernetTrainer, space: SearchSpace, cfg: DictConfig, probe_batches: int,
             device: torch.device) -> tuple[float, int, int]:
    """Seconds to score one edge (all its ops) on one minibatch (median of ``probe_batches``),
    the number of candidate edges and ``criterion.batches``."""

    ctx = split_context(trainer, space, cfg)
    edges = ctx.candidate_edges()
    scorer = EdgeScorer(ctx, edges[0], ctx.ops_of(edges[0]))
    times = [timed(lambda d=done, b=batch: scorer.add_batch(d, b), device)
             for done, batch in gm_minibatches(ctx, max(probe_batches, 1))]
    return statistics.median(times), len(edges), int(cfg.criterion.batches)


def gm_memory_rows(trainer: SupernetTrainer, space: SearchSpace, cfg: DictConfig, shards: list[int],
                   device: torch.device, shape: str) -> list[Row]:
    """Peak memory of scoring one edge (all its ops) on one minibatch when it is cut into k shards:
    one process with k shards runs them one after the other, each the size a rank of k ranks
    scores (criteria/gm/fast.py), so its peak is a rank's. The first edge, the first minibatch."""
    if not shards:
        return []
    ctx = split_context(trainer, space, cfg)
    edge = ctx.candidate_edges()[0]
    _, batch = next(gm_minibatches(ctx, 1))
    bs = len(batch[1])
    rows = []
    for k in shards:
        if bs % k:
            raise ConfigError(f"bench.gm_shards={list(shards)}: {k} does not divide the minibatch of {bs}")
        with distributed.shard_count(k):
            fast_op_gradients(ctx, edge, ctx.ops_of(edge), batch, 0)  # warm-up (allocator, lazy state)
            with PeakMemory(device) as mem:
                fast_op_gradients(ctx, edge, ctx.ops_of(edge), batch, 0)
        rows.append(Row("gm_memory_per_rank", f"{k} shard{'s' if k > 1 else ''}", mem.mib, mem.kind,
                        f"{shape}; edge {edge}, one minibatch of {bs} in {k} shards of {bs // k} (= one of {k} ranks)"))
    return rows


def gm_compare(cfg: DictConfig, device: torch.device) -> dict[str, Any]:
    """A full leaf split of the proxy supernet (``bench.gm_*``) with and without early stop."""

    b = cfg.bench
    c = bench_config(cfg, C=int(b.gm_C), N=int(b.gm_N))
    with open_dict(c):
        c.train.batch_size = int(b.gm_batch_size)
        if int(b.gm_batches) > 0:
            c.criterion.batches = int(b.gm_batches)
    batches = int(c.criterion.batches)
    data = synthetic_data(2 * int(b.gm_batch_size) * 8, int(b.gm_image_size), int(cfg.seed))
    trainer, space = build_ours(c, device, data)
    gen = generator(0, "bench", "gm-warm")
    for step, (xb, yb) in zip(range(int(b.gm_warm_steps)), trainer.train_split.batches(
            int(b.gm_batch_size), 1, augment=False, drop_last=True)):
        trainer.train_step(trainer._prep((xb, yb)), None, gen, f"bench gm warm-up step {step + 1}")
    out: dict[str, Any] = {"batches": batches, "edges": len(space.splittable_edges())}
    for key, early in (("full", False), ("early_stop", True)):
        crit_cfg = copy.deepcopy(c.criterion)
        with open_dict(crit_cfg):
            crit_cfg.early_stop = early
        crit = GradientMatching(crit_cfg)
        ctx = split_context(trainer, space, c)
        decision = None

        def run(crit: GradientMatching = crit, ctx: Any = ctx) -> None:
            nonlocal decision
            decision = crit.decide(ctx)

        out[key] = {"seconds": timed(run, device), "edge": decision.edge, "groups": decision.groups,
                    "used": max(s.get("batches", batches) for s in decision.scores.values())}
    return out


# -- the whole bench -----------------------------------------------------------------------------
def run_bench(cfg: DictConfig, device: torch.device) -> tuple[list[Row], float | None]:
    """Every measurement of ``gmnas bench``; returns the rows and ours/reference throughput."""
    b = cfg.bench
    bs, size = int(b.batch_size), int(b.image_size)
    reference = str(b.reference)
    if reference not in ("none", "xautodl"):
        raise ConfigError(f"bench.reference={reference!r}; valid: none, xautodl")
    if len(b.threads_compare) not in (0, 2):
        raise ConfigError(f"bench.threads_compare={list(b.threads_compare)}: give two thread counts, e.g. [1,2]")
    c = bench_config(cfg)
    where = (f"{device.type}, {torch.get_num_threads()} threads" if device.type == "cpu"
             else torch.cuda.get_device_name(device))
    shape = f"{c.space.name} C={c.space.C} N={c.space.N}, batch {bs}, {size}x{size}, {where}"
    shape += f", channels_last={bool(c.channels_last)}"
    if device.type == "cuda":
        shape += f", amp={'bf16' if c.amp else 'off'}"
    data = synthetic_data(2 * bs * 4, size, int(cfg.seed))
    trainer, space = build_ours(c, device, data)
    batches = fixed_batches((trainer.train_split, trainer.arch_split), bs, 1)
    steps: dict[str, Callable[[], None]] = {"ours": ours_step(trainer, batches)}
    if reference == "xautodl":
        steps["xautodl"] = xautodl_step(c, device, batches)
    res = compare_throughput(steps, device, int(b.warmup_steps), int(b.steps))
    rows: list[Row] = thread_rows(steps["ours"], b, device, shape)
    for name, r in res.items():
        med = statistics.median(r["times"])
        detail = f"{shape}; median of {len(r['times'])} steps ({', '.join(f'{t:.2f}' for t in r['times'])} s)"
        rows.append(Row("search_step", name, med, "s", detail))
        rows.append(Row("throughput", name, 2 * bs / med, "images/s", "2 minibatches per search step"))
        mem = r["memory"]
        rows.append(Row("peak_memory", name, mem.mib, mem.kind, "timed steps" if device.type == "cuda"
                        else "warm-up step(s): grads, optimizer state, activations"))
    ratio = None
    if "xautodl" in res:
        t_ours = statistics.median(res["ours"]["times"])
        t_ref = statistics.median(res["xautodl"]["times"])
        ratio = t_ref / t_ours
        rows.append(Row("throughput_ratio", "ours/xautodl", ratio, "x", "median step time of xautodl / ours"))
    if bool(b.paths):
        rows += path_rows(trainer, space, c, steps["ours"], device, shape)
    del steps, res
    split_times: dict[str, float] = {}
    n_edges = n_batches = 0
    if int(b.gm_probe_batches) > 0:
        per_batch, n_edges, n_batches = gm_probe(trainer, space, c, int(b.gm_probe_batches), device)
        rows.append(Row("gm_edge_minibatch", "ours", per_batch, "s",
                        f"{shape}; one edge, all its ops, one minibatch"))
        rows.append(Row("gm_scoring_split", "ours", per_batch * n_batches * n_edges, "s",
                        f"extrapolated: {n_batches} minibatches (criterion.batches) x {n_edges} edges"))
    rows += gm_memory_rows(trainer, space, c, [int(k) for k in b.gm_shards], device, shape)
    if int(b.gm_probe_batches) > 0 and reference == "xautodl":
        with seeded_init(int(cfg.seed), "init"):
            ref_net = xautodl_net(c, device, NUM_CLASSES)
        ctx = split_context(trainer, space, c)
        probe = list(gm_minibatches(ctx, max(int(b.gm_probe_batches), 1)))
        split_times = compare_split(ctx, ref_net, probe, lambda fn: timed(fn, device))
        del ref_net
    del trainer
    if bool(b.gm_compare):
        g = gm_compare(cfg, device)
        same = (g["full"]["edge"], g["full"]["groups"]) == (g["early_stop"]["edge"], g["early_stop"]["groups"])
        proxy = (f"proxy C={b.gm_C} N={b.gm_N}, batch {b.gm_batch_size}, {b.gm_image_size}x{b.gm_image_size}, "
                 f"{g['edges']} edges")
        rows.append(Row("gm_scoring_full", "ours", g["full"]["seconds"], "s",
                        f"{proxy}, {g['batches']} minibatches; edge {g['full']['edge']}"))
        speedup = g["full"]["seconds"] / max(g["early_stop"]["seconds"], 1e-9)
        rows.append(Row("gm_scoring_early_stop", "ours", g["early_stop"]["seconds"], "s",
                        f"{proxy}, stopped at {g['early_stop']['used']}/{g['batches']} minibatches; "
                        f"same decision: {'yes' if same else 'NO'}; speed-up {speedup:.2f}x"))
    if split_times:
        used = min(int(g["early_stop"]["used"]), n_batches) if bool(b.gm_compare) else n_batches
        rows += split_ratio_rows(split_times, n_edges, n_batches, used, shape)
    if bool(b.schedule):
        rows += schedule_rows(cfg, device, where)
    return rows, ratio


def schedule_rows(cfg: DictConfig, device: torch.device, where: str) -> list[Row]:
    """``bench.schedule``: the configured schedule end to end (``bench/schedule.py``)."""

    s = time_schedule(cfg, device)
    what = (f"{cfg.space.name} C={cfg.space.C} N={cfg.space.N}, {cfg.algo.name}, criterion {cfg.criterion.name}, "
            f"batch {cfg.train.batch_size}, {cfg.bench.image_size}x{cfg.bench.image_size}, {where}")
    rows = [Row("schedule_stage", name, s[name], "s", what) for name in ("warmup", "split", "search")]
    rows.append(Row("schedule_total", "ours", s["total"] / 60, "min",
                    f"{s['epochs']} supernet-epochs of {s['images']} images + GM scoring, {s['leaves']} leaves"))
    if "peak_mib" in s:
        rows.append(Row("schedule_peak_memory", "ours", s["peak_mib"], "MiB max_memory_allocated", what))
    return rows


def split_ratio_rows(t: dict[str, float], n_edges: int, n_batches: int, used: int, shape: str) -> list[Row]:
    """One leaf split, official loop against ours (``bench/gm.py``), extrapolated per edge-minibatch."""
    official = t["official"] * n_batches * n_edges
    ours = t["ours"] * used * n_edges
    return [
        Row("gm_edge_minibatch", "official", t["official"], "s",
            f"{shape}; xautodl DARTS-V1, per op: one-hot edge, full forward + backward"),
        Row("gm_edge_minibatch_ratio", "official/ours", t["official"] / t["ours"], "x",
            f"same minibatches, alternating: official {t['official']:.3g} s, ours {t['ours']:.3g} s (medians)"),
        Row("gm_split", "official", official, "s",
            f"extrapolated: {n_batches} minibatches (criterion.batches) x {n_edges} edges"),
        Row("gm_split", "ours", ours, "s",
            f"extrapolated: {used} minibatches (early stop of the proxy split) x {n_edges} edges"),
        Row("gm_split_ratio", "official/ours", official / ours, "x", "one leaf split (root), extrapolated"),
    ]


def path_rows(trainer: SupernetTrainer, space: SearchSpace, cfg: DictConfig, step: Callable[[], None],
              device: torch.device, shape: str) -> list[Row]:
    """``bench.paths=true``: fast paths against their plain twins (bench/paths.py)."""

    n = int(cfg.bench.steps)
    rows: list[Row] = []
    if has_grouped_cells(trainer.net):
        t = grouping_times(step, n, lambda fn: timed(fn, device))
        rows += [Row("search_step_paths", k, v, "s", f"{shape}; cell nodes' edges {k}, median of {n}")
                 for k, v in t.items()]
        rows.append(Row("grouping_ratio", "per_edge/grouped", t["per_edge"] / t["grouped"], "x",
                        "> 1: grouping a node's edges is faster"))
    t = op_batching_times(split_context(trainer, space, cfg), n, lambda fn: timed(fn, device))
    rows += [Row("gm_edge_minibatch_paths", f"batched_ops={k}", v, "s", f"{shape}; one edge, median of {n}")
             for k, v in t.items()]
    best = min((k for k in t if k != "off"), key=t.get)
    rows.append(Row("op_batching_ratio", f"off/{best}", t["off"] / t[best], "x",
                    f"> 1: criterion.batched_ops={best} is faster than one pass per op"))
    return rows


def thread_rows(step: Callable[[], None], b: DictConfig, device: torch.device, shape: str) -> list[Row]:
    """``bench.threads_compare=[a, b]``: our search step with a and b CPU threads, alternating
    (ABBA, ``bench.steps`` each, after one warm-up step each); ratio = time(a) / time(b)."""
    counts = [int(k) for k in b.threads_compare]
    if device.type != "cpu" or not counts:
        return []
    before = torch.get_num_threads()
    times: dict[int, list[float]] = {k: [] for k in counts}
    try:
        for k in counts:
            torch.set_num_threads(k)
            step()
        for i in range(int(b.steps)):
            for k in counts if i % 2 == 0 else counts[::-1]:
                torch.set_num_threads(k)
                times[k].append(timed(step, device))
    finally:
        torch.set_num_threads(before)
    med = {k: statistics.median(v) for k, v in times.items()}
    same = shape.replace(f"{before} threads", f"{'/'.join(map(str, counts))} threads")
    rows = [Row("search_step_threads", f"{k} threads", med[k], "s", f"{same}; median of {len(times[k])} steps")
            for k in counts]
    a, c = counts
    rows.append(Row("threads_ratio", f"{a}/{c} threads", med[a] / med[c], "x",
                    f"median step time with {a} threads / with {c}: > 1 means {c} threads are faster"))
    return rows


def bench_out(cfg: DictConfig) -> Path:
    """Where the bench writes: ``bench.out``, or ``<out_dir>/bench`` when empty (whatever the working
    directory, as the report's outputs)."""
    return Path(str(cfg.bench.out)) if str(cfg.bench.out) else Path(str(cfg.out_dir)) / "bench"


def write_csv(rows: list[Row], out: str | Path) -> Path:
    """Rows as CSV; ``out`` is a .csv file or a directory (``bench.csv`` inside)."""

    path = Path(out)
    if path.suffix != ".csv":
        path = path / "bench.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["metric", "impl", "value", "unit", "detail"])
        for r in rows:
            w.writerow([r.metric, r.impl, f"{r.value:.6g}", r.unit, r.detail])
    return path
