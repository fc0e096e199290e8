"""Structured config schemas (dataclasses) registered in Hydra's ConfigStore.

Every YAML file under ``conf/`` is merged into these typed nodes, so an unknown key or a
wrongly typed value fails at start-up, naming the key. Defaults trace to the paper
(Appendix D) or to ``docs/method-facts.md``; the comments say which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from gmnas_cli.config.bounds import bounded, rule

# Op names: letters, digits and _.+- (no spaces, quotes or path separators).
IDENT = r"[A-Za-z0-9_.+-]+"
IDENT_HINT = "names of letters, digits and _.+-"
# An experiment name is one plain folder name: no path separator, not "." or "..".
NAME = r"(?!\.\.?$)[A-Za-z0-9_.=,+-]{0,200}"
NAME_HINT = ("one plain folder name of at most 200 letters, digits and -_.=,+ (no '/', not '.' or '..'; "
             "out_dir=... says where experiments live)")


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Resume(str, Enum):
    auto = "auto"
    never = "never"


class Deps(str, Enum):
    """A stage whose predecessors have not completed: run them first (auto, like make) or refuse."""

    auto = "auto"
    never = "never"


class Similarity(str, Enum):
    """Gradient similarity (paper Table 6)."""

    cosine = "cosine"
    per_filter_cosine = "per_filter_cosine"
    l2 = "l2"


class Cut(str, Enum):
    """Graph cut: balanced min-cut (Eqn. 3), normalised cut (Appendix B.3), or the official
    DARTS-space rule (``within``: groups of >= 2 ops, least within-group distance)."""

    balanced = "balanced"
    ncut = "ncut"
    within = "within"


class GradientAverage(str, Enum):
    """What GM averages over minibatches: distance matrices (official, App. B.2) or gradients."""

    distance = "distance"
    gradient = "gradient"


class ScoredWeight(str, Enum):
    """Weight of the scored op on its edge: 1 (official NB201) or its softmax weight (official DARTS space)."""

    one_hot = "one_hot"
    softmax = "softmax"


class OpBatching(str, Enum):
    """How GM computes the per-op gradients of one edge (criteria/gm/fast.py, docs/performance.md)."""

    off = "off"  # one suffix pass per op
    vmap = "vmap"  # one torch.func.vmap pass over the ops (any space; the GPU path)
    channels = "channels"  # the ops' copies side by side in the channels, one pass (spaces with op copies: darts)
    auto = "auto"  # channels where the space has them, else off


class UnrolledStep(str, Enum):
    """DARTS 2nd order virtual step: official (w - xi(mu buf + d), coefficient xi) or exact SGD."""

    official = "official"
    exact = "exact"


class SearchSchedule(str, Enum):
    """Search-phase lr cosine / temperature length: search epochs (restart) or the whole run."""

    restart = "restart"
    run = "run"


class SelectCriterion(str, Enum):
    """Leaf selection (Appendix C)."""

    val_loss = "val_loss"
    val_acc = "val_acc"
    max = "max"
    successive_halving = "successive_halving"


@dataclass
class SpaceConfig:
    """A search space; ``name`` keys ``SPACES``."""

    name: str = MISSING
    ops: list[str] = bounded(MISSING, min_len=1, pattern=IDENT, hint=IDENT_HINT)  # candidate ops, in the space's canonical order
    C: int = bounded(16, ge=1)  # NB201: C=16 (docs/method-facts.md); DARTS supernet: C=16
    N: int = bounded(5, ge=0)  # cells per stage; NB201: 5 (docs/method-facts.md); DARTS: 2 normal cells per stage = 8 cells (D.2)
    nodes: int = bounded(4, ge=1)  # intermediate nodes per cell
    unsplittable_ops: list[str] = bounded(default_factory=list, pattern=IDENT, hint=IDENT_HINT)  # DARTS: ["none"] (docs/method-facts.md)
    split_cells: list[str] = bounded(default_factory=lambda: ["normal"], choices=["normal", "reduce"], min_len=1)  # DARTS: normal cells only
    # Keys of one or two spaces (declared where each registers, e.g. ``SPACES.register("mobilenet", keys=...)``);
    # refused on a run of another space. mobilenet: ProxylessNAS widths; ofa_mbv3: width_mult, stages, expand_ratios.
    width_mult: float = bounded(1.0, gt=0)  # every width -> make_divisible(w * width_mult, 8)
    expand_ratios: list[int] = bounded(default_factory=list, ge=1)  # ofa_mbv3: elastic expand ratios (OFA [3, 4, 6])
    stages: list[Any] = field(default_factory=list)  # mobilenet: [width, blocks, stride] per stage
    stem_width: int = bounded(32, ge=1)  # mobilenet: first 3x3 stride-2 conv
    first_block_width: int = bounded(16, ge=1)  # mobilenet: the fixed 3x3_MBConv1 block
    feature_mix_width: int = bounded(1280, ge=1)  # mobilenet: the 1x1 feature-mix layer
    # space=ofa_mbv3 (OFA OFAMobileNetV3): elastic depths per stage (the first d blocks; OFA [2, 3, 4]),
    # first conv / first block width (16) and [final expand, feature mix] widths ([960, 1280]), before width_mult.
    depths: list[int] = bounded(default_factory=lambda: [2, 3, 4], ge=1, le=4)
    first_width: int = bounded(16, ge=1)
    head_widths: list[int] = bounded(default_factory=lambda: [960, 1280], ge=1)


@dataclass
class EvolutionConfig:
    """``algo=ofa``: evolution per leaf (OFA ``EvolutionFinder`` / the GM fork's ``evolution_ws.py``)."""

    population: int = bounded(100, ge=2)
    iterations: int = bounded(500, ge=0)
    parent_ratio: float = bounded(0.25, gt=0, le=1)
    mutation_ratio: float = bounded(0.5, ge=0, le=1)
    mutate_prob: float = bounded(0.1, ge=0, le=1)  # per-gene mutation probability
    flops_window: list[float] = bounded(default_factory=lambda: [500.0, 600.0], ge=0)  # MFLOPs (MACs) [lo, hi]
    eval_images: int = bounded(10000, ge=0)  # held-out images scored per candidate (0: all)
    bn_images: int = bounded(500, ge=1)  # weights-half images recalibrating BN per candidate (GM fork: about 500)
    max_tries: int = bounded(1000, ge=1)  # draws to find a candidate inside the FLOPs window


@dataclass
class AlgoConfig:
    """A base weight-sharing algorithm; ``name`` keys ``ALGORITHMS``."""

    name: str = MISSING
    order: int = bounded(1, choices=[1, 2])  # DARTS: 1st or 2nd order
    arch_lr: float = bounded(3e-4, gt=0)  # Adam on alpha (Appendix D / docs/method-facts.md)
    arch_betas: list[float] = bounded(default_factory=lambda: [0.5, 0.999], ge=0, lt=1, min_len=2, max_len=2)  # Adam
    arch_weight_decay: float = bounded(1e-3, ge=0)
    tau_max: float = bounded(1.0, gt=0)  # SNAS/GDAS temperature schedule (docs/method-facts.md: 1 -> 0.1)
    tau_min: float = bounded(0.1, gt=0)
    eval_archs: int = bounded(200, ge=1)  # RSPS: distinct sampled paths scored at derivation (official rsws_project: 200)
    eval_batches: int = bounded(0, ge=0)  # RSPS: architecture-half minibatches per path; 0: the whole half (official)
    eval_batch_size: int = bounded(0, ge=0)  # RSPS derivation minibatch size; 0: train.batch_size (official valid_queue)
    unrolled_eps: float = bounded(0.01, gt=0)  # DARTS 2nd order finite-difference scale (Liu et al. 2019)
    unrolled_step: UnrolledStep = UnrolledStep.official  # official _compute_unrolled_model (also with Nesterov)
    # algo=ofa: progressive shrinking (OFA upstream, docs/mobilenet.md). The kernel phase is the
    # warmup/split phase (train.*); leaves then finish it and run the depth and expand phases.
    full_epochs: int = bounded(180, ge=0)  # the full network k7/e6/d4 first (GM fork `normal`: 180)
    full_lr: float = bounded(0.1625, gt=0)
    kernel_epochs: int = bounded(120, ge=0)  # the whole kernel phase (splits happen inside it)
    depth_epochs: list[int] = bounded(default_factory=lambda: [25, 120], ge=0)  # OFA: depth {3,4}, then {2,3,4}
    depth_lr: list[float] = bounded(default_factory=lambda: [0.0025, 0.0075], gt=0)
    expand_epochs: list[int] = bounded(default_factory=lambda: [25, 120], ge=0)  # OFA: expand {4,6}, then {3,4,6}
    expand_lr: list[float] = bounded(default_factory=lambda: [0.0025, 0.0075], gt=0)
    dynamic_batch: list[int] = bounded(default_factory=lambda: [1, 2, 4], ge=1)  # subnets/step: kernel, depth, expand
    kd_ratio: float = bounded(1.0, ge=0)  # knowledge distillation from the full network (OFA)
    label_smoothing: float = bounded(0.1, ge=0, lt=1)
    leaf_start: str = bounded("continue", choices=["continue", "full"])  # split-phase weights | full net
    evolution: EvolutionConfig = field(default_factory=EvolutionConfig)
    arch_every: int = bounded(1, ge=1)  # weight steps per architecture step (ProxylessNAS: 5)
    # proxyless only: differentiable hardware regulariser (ProxylessNAS; off in GM's released run)
    target: str = bounded("none", choices=["none", "flops", "latency"])
    target_ref: float = bounded(300.0, gt=0)  # reference: MFLOPs (ProxylessNAS: 300) or ms (mobile: 80)
    reg_form: str = bounded("mul#log", choices=["mul#log", "add#linear"])
    reg_alpha: float = bounded(0.2, ge=0)  # mul#log: alpha * CE * (log E / log ref) ** beta
    reg_beta: float = bounded(0.3, ge=0)
    reg_lambda: float = bounded(0.1, ge=0)  # add#linear: CE + lambda * (E - ref) / ref
    latency_table: str = ""  # target=latency: a ProxylessNAS-style LUT YAML path (never downloaded)


rule("algo.tau_min <= algo.tau_max")  # the temperature anneals downwards (SNAS/GDAS)


@dataclass
class TrainConfig:
    """Supernet weight training (Appendix D / docs/method-facts.md, NB201 settings)."""

    batch_size: int = bounded(48, ge=1)
    lr: float = bounded(0.025, gt=0)
    lr_min: float = bounded(0.001, ge=0)
    momentum: float = bounded(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = bounded(5e-4, ge=0)
    grad_clip: float = bounded(5.0, ge=0)  # 0: no clipping
    augment: bool = True  # random crop + flip for image data sets
    max_steps_per_epoch: int = bounded(0, ge=0)  # 0: full epoch; >0 caps steps (smoke tests)
    # Search-phase schedule: restart = cosine/tau over search_epochs (official DARTS space,
    # --fix_sche 1); run = over the whole run's epochs (official NB201). Split phase: whole run always.
    search_schedule: SearchSchedule = SearchSchedule.restart
    label_smoothing: float = bounded(0.0, ge=0, lt=1)  # ProxylessNAS search: 0.1
    # split_train_arch only: start of the frozen warm-up's own cosine (ProxylessNAS warm_up: 0.05); 0: lr
    warmup_lr: float = bounded(0.0, ge=0)
    finite_check_every: int = bounded(50, ge=1)  # CUDA: steps between NaN/inf loss checks (and every epoch end)


rule("train.lr_min <= train.lr")  # cosine from lr down to lr_min
rule("train.batch_size % WORLD_SIZE == 0")  # data parallel: equal shares per process


@dataclass
class DatasetConfig:
    """A data set read from disk (never downloaded); ``name`` keys ``DATASETS``."""

    name: str = MISSING
    root: str = ""
    num_classes: int = bounded(10, ge=2)
    in_channels: int = bounded(3, ge=1)
    image_size: int = bounded(32, ge=1)
    limit: int = bounded(0, ge=0)  # 0: all images; >0 keeps the first `limit` training images (smoke tests)
    test_limit: int = bounded(0, ge=0)
    # imagenet only: held-out architecture split; 0: the second half by index (docs/method-facts.md), >0: that
    # many training images, class-balanced and seeded (ProxylessNAS valid_size: 10000)
    valid_size: int = bounded(0, ge=0)
    loader: str = bounded("auto", choices=["auto", "memory", "stream"])  # imagenet: auto picks by size
    workers: int = bounded(4, ge=0)  # imagenet stream: DataLoader worker processes


@dataclass
class CriterionConfig:
    """Splitting criterion; ``name`` keys ``CRITERIA`` (gm, exhaustive, random, none)."""

    name: str = MISSING
    batches: int = bounded(100, ge=1)  # GM: minibatches averaged (docs/method-facts.md)
    similarity: Similarity = Similarity.cosine  # paper Table 6
    edge_selection: Any = "cut_cost"  # "cut_cost" | "random" (one permutation: same edges in every branch) | "random_per_node" | edge list
    cut: Cut = Cut.balanced  # Eqn. 3, Appendix B.3's ncut, or the official DARTS-space `within` rule
    average: GradientAverage = GradientAverage.distance  # official split_supernet / App. B.2: mean of distances
    scored_weight: ScoredWeight = ScoredWeight.one_hot  # official NB201 (DARTS-space presets: softmax)
    augment: bool = True  # official: GM scores augmented training minibatches (next(iter(train_queue)))
    early_stop: bool = False  # sequential confidence test on per-minibatch costs (criteria/gm/criterion.py)
    confidence: float = bounded(3.0, gt=0)  # early stop: error rate over all looks 1 - Phi(confidence) (3: 0.00135; criteria/gm/stop.py)
    early_stop_min_batches: int = bounded(10, ge=2)  # early stop: the first look (never before this many minibatches)
    early_stop_looks: int = bounded(4, ge=1)  # early stop: looks, geometric from early_stop_min_batches below criterion.batches
    workers: int = bounded(1, ge=0)  # GM: CPU processes scoring a split's edges in parallel (criteria/gm/workers.py); 0: one per usable CPU
    batched_ops: OpBatching = OpBatching.off  # GM: an edge's ops in one pass (criteria/gm/fast.py); off keeps memory at one pass


class HalvingProtocol(str, Enum):
    """Successive halving's rungs (gmnas_cli/selection/halving.py)."""

    official = "official"  # epoch windows of the real retrain runs (public successive_halving.py)
    short_retrain = "short_retrain"  # a short retrain from scratch per rung


class WindowAverage(str, Enum):
    """How the official protocol scores a candidate over a rung's epoch window."""

    moving = "moving"  # official avg_of_acc(..., type='moving_avg'): weights 0.9 * 0.1^(age in epochs)
    mean = "mean"  # plain mean over the window's epochs


@dataclass
class SuccessiveHalvingConfig:
    """Appendix C, Algorithm 3. ``official``: rung r ranks the candidates' real retrain runs by the
    ``average`` held-out accuracy over epochs ``window_start[r] <= e < window_end[r]`` (public
    successive_halving.py: top 4 of 8 over epochs 0-29, top 2 over 31-99 by its moving average,
    winner from the full runs);
    ``short_retrain``: rung r retrains from scratch for ``schedule[r]`` epochs."""

    protocol: HalvingProtocol = HalvingProtocol.official
    window_start: list[int] = bounded(default_factory=lambda: [0, 31], ge=0, min_len=1)
    window_end: list[int] = bounded(default_factory=lambda: [30, 100], ge=1, min_len=1)
    schedule: list[int] = bounded(default_factory=lambda: [10, 20, 40], ge=1, min_len=1)
    eta: int = bounded(2, ge=2)  # Algorithm 3 keeps 1/eta of the candidates per rung
    average: WindowAverage = WindowAverage.moving  # official: moving_avg_of_list (successive_halving.py)


@dataclass
class SelectConfig:
    criterion: SelectCriterion = SelectCriterion.val_loss
    successive_halving: SuccessiveHalvingConfig = field(default_factory=SuccessiveHalvingConfig)


@dataclass
class RetrainConfig:
    """Evaluation protocol (DARTS: Appendix D.2); presets in ``conf/retrain/``."""

    epochs: int = bounded(600, ge=1)
    C: int = bounded(36, ge=1)
    layers: int = bounded(20, ge=1)
    batch_size: int = bounded(96, ge=1)
    lr: float = bounded(0.025, gt=0)
    momentum: float = bounded(0.9, ge=0, lt=1)
    weight_decay: float = bounded(3e-4, ge=0)
    cutout: int = bounded(16, ge=0)  # 0: no cutout
    drop_path: float = bounded(0.3, ge=0, lt=1)
    auxiliary_weight: float = bounded(0.4, ge=0)
    grad_clip: float = bounded(5.0, ge=0)  # 0: no clipping
    max_steps_per_epoch: int = bounded(0, ge=0)
    network: str = bounded("cifar", choices=["cifar", "imagenet"])  # DARTS space: cifar (NetworkCIFAR) | imagenet (mobile setting, NetworkImageNet)
    lr_min: float = bounded(0.0, ge=0)  # cosine floor (DARTS train.py: CosineAnnealingLR, eta_min 0)
    lr_schedule: str = bounded("cosine", choices=["cosine", "exponential"])  # cosine | exponential (DARTS ImageNet: lr * lr_gamma**epoch)
    lr_gamma: float = bounded(0.97, gt=0, le=1)  # exponential decay per epoch (DARTS train_imagenet.py)
    nesterov: bool = False  # DARTS: plain momentum; NAS-Bench-201 protocol: Nesterov
    label_smoothing: float = bounded(0.0, ge=0, lt=1)  # DARTS ImageNet: 0.1
    warmup_epochs: int = bounded(0, ge=0)  # linear lr warm-up epochs before the cosine (ProxylessNAS: 5)
    dropout: float = bounded(0.0, ge=0, lt=1)  # before the classifier; space=mobilenet only (SearchSpace.retrain_keys)


rule("retrain.lr_min <= retrain.lr")
rule("retrain.batch_size % WORLD_SIZE == 0")


@dataclass
class BenchmarkConfig:
    """Benchmark lookup (NAS-Bench-201 tables, NB301 surrogate) or none."""

    name: str = "none"
    path: str = ""
    arch_column: str = "arch"
    columns: dict[str, str] = field(default_factory=dict)  # metric name -> column
    metric: str = ""  # the metric `select.criterion=max` maximises
    epoch: int = bounded(98, ge=1, le=98)  # NB301 surrogate query epoch (the surrogate covers 1..98)
    trust_pickle: bool = False  # official NB201 .pth/.pickle files run pickled code on load: opt in


@dataclass
class ReportConfig:
    table: str = "auto"  # auto: the paper's table for the experiments' space and what varies (darts: Table 4, mobilenet/ofa_mbv3: Table 5, nb201_4ops: Table 1, NB201: Table 8/6/7 when selection/similarity/rankings vary, else Table 3); printed
    # Defaults follow out_dir, whatever the working directory; a path given explicitly is taken as typed.
    experiments: list[str] = field(default_factory=list)  # globs of experiment folders; []: <out_dir>/*
    out: str = ""  # tables and plots; "": <out_dir>/report
    formats: list[str] = bounded(default_factory=lambda: ["csv", "md", "tex"], choices=["csv", "md", "tex"])
    plots: bool = True


@dataclass
class RankConfig:
    """Ranking correlation (paper 5.2, Table 7): sub-supernet estimates against a benchmark."""

    samples: int = bounded(200, ge=1)  # uniformly sampled architectures for the "all" row
    top: list[float] = bounded(default_factory=lambda: [0.2, 0.5, 1.0], gt=0, le=100)  # top percent by benchmark
    batches: int = bounded(0, ge=0)  # 0: the whole held-out half per estimate; k: first k minibatches
    estimate: str = bounded("val_acc", choices=["val_acc", "neg_val_loss"])  # val_acc | neg_val_loss


@dataclass
class AnalyzeConfig:
    """``gmnas analyze`` (gmnas_cli/analysis/weight_sharing.py): paper Table 2 / Appendix B.2. K and the epoch counts
    of B.2 are not legible in our copy of the paper: defaults sized for about one GPU hour on NB201."""

    archs: int = bounded(10, ge=1)  # K target architectures A (B.2: "repeated for K randomly sampled A")
    epochs: int = bounded(10, ge=1)  # RSPS epochs per pair {A, B} on the weights half
    batches: int = bounded(100, ge=1)  # minibatches the gradient similarity averages (B.2: 100)
    out: str = ""  # pair results, checkpoints and analyze.json; "": <out_dir>/analyze


@dataclass
class BenchConfig:
    """``gmnas bench`` (gmnas_cli/bench/suite.py); defaults keep ``make bench`` under 3 min on 2 CPU cores."""

    batch_size: int = bounded(64, ge=1)
    image_size: int = bounded(32, ge=1)
    steps: int = bounded(3, ge=1)  # timed search steps per implementation, alternating ours/reference (ABBA)
    warmup_steps: int = bounded(1, ge=0)  # untimed steps per implementation first (CPU: peak memory measured here)
    reference: str = bounded("none", choices=["none", "xautodl"])
    out: str = ""  # a directory (bench.csv inside) or a .csv path; "": <out_dir>/bench
    gm_probe_batches: int = bounded(1, ge=0)  # minibatches timed on one edge (configured size), extrapolated; 0: skip
    gm_shards: list[int] = bounded(default_factory=lambda: [1, 2], ge=1)  # GM peak memory per rank with k shards of a minibatch (k ranks); []: skip
    gm_compare: bool = True  # full small split with and without criterion.early_stop (proxy below)
    gm_C: int = bounded(4, ge=1)  # proxy supernet of the early-stop comparison
    gm_N: int = bounded(1, ge=0)
    gm_image_size: int = bounded(8, ge=1)
    gm_batch_size: int = bounded(16, ge=1)
    gm_batches: int = bounded(40, ge=0)  # scoring minibatches of the proxy split (0: criterion.batches)
    gm_warm_steps: int = bounded(20, ge=0)  # weight steps on the proxy before scoring
    threads: int = bounded(1, ge=0)  # CPU: torch threads while benchmarking (0: keep `threads`); 1 is robust on shared cores
    threads_compare: list[int] = bounded(default_factory=list, ge=1)  # CPU: e.g. [1, 2] times our step with both
    paths: bool = False  # also time each fast path against its plain twin (bench/paths.py): edge grouping, batched_ops
    schedule: bool = False  # also time the configured warmup + split + search end to end (bench/schedule.py)
    schedule_images: int = bounded(50_000, ge=2)  # synthetic training images of that run (CIFAR-10: 50,000)
    suite: str = bounded("default", choices=["default", "smoke"])  # smoke: each experiment=smoke stage timed per space and algorithm (bench/smoke.py)
    smoke_spaces: list[str] = bounded(default_factory=list, choices=["nb201", "nb201_4ops", "darts", "mobilenet", "ofa_mbv3"])  # suite=smoke: spaces ([]: all five)
    smoke_algos: list[str] = bounded(default_factory=list, choices=["darts", "gdas", "rsps", "snas", "proxyless", "ofa"])  # suite=smoke: algorithms ([]: every one the space supports)


@dataclass
class StatusConfig:
    """``gmnas status``: a table on the console, or the same figures as JSON on stdout (``--json``)."""

    format: str = bounded("table", choices=["table", "json"])


@dataclass
class TreeConfig:
    """``gmnas tree``: the partition tree on the console; ``plot=true`` also writes its figures."""

    plot: bool = False  # heatmaps per split, cut costs and the tree figure (PNG, PDF) in <out_dir>/<name>/plots


@dataclass
class Config:
    """Top-level config shared by every subcommand (the common keys of the frame issue)."""

    space: SpaceConfig = MISSING
    algo: AlgoConfig = MISSING
    dataset: DatasetConfig = MISSING
    criterion: CriterionConfig = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    rank: RankConfig = field(default_factory=RankConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    analyze: AnalyzeConfig = field(default_factory=AnalyzeConfig)
    status: StatusConfig = field(default_factory=StatusConfig)
    tree: TreeConfig = field(default_factory=TreeConfig)

    name: str = bounded("", pattern=NAME, hint=NAME_HINT)  # experiment directory name (a plain name); "" builds one from space/algo/criterion/dataset/seed
    out_dir: str = "outputs"
    seed: int = bounded(0, ge=0, lt=2**63)
    device: Device = Device.auto
    deterministic: bool = False
    warmup_epochs: int = bounded(15, ge=0)  # NB201 DARTS/SNAS: splits at epochs 15 and 30 (docs/method-facts.md)
    splits: int = bounded(2, ge=0)
    branching: Any = 2  # one value, or a list with one value per split
    search_epochs: int = bounded(30, ge=0)
    restart: bool = True  # paper 3.4 "Supernet splitting with restart"
    # The official GM + ProxylessNAS joint schedule (App. D.3, facts 1a): after the frozen warmup the
    # root trains alpha too for warmup_epochs more, children likewise between splits, and (with
    # restart=false) leaves continue into search with alpha and both optimizers, all on one cosine
    split_train_arch: bool = False
    force: bool = False
    resume: Resume = Resume.auto
    deps: Deps = Deps.auto  # auto: a stage first runs its missing predecessors; never: refuse
    leaf: Any = None  # search: one leaf id (None: all leaves)
    amp: bool = False  # CUDA only: bf16 autocast of supernet training, GM gradients and retrain (official: fp32; docs/fidelity.md)
    channels_last: bool = True  # NHWC supernets on CPU and CUDA (CPU: 1.2x per search step, docs/performance.md); retrain: CUDA only
    quiet: bool = False  # no progress bars
    logger: str = bounded("csv", choices=["csv", "tensorboard"])  # tensorboard: also event files (infra/tblog.py)
    arch: str = ""  # `gmnas arch`: the architecture string (NB201 string, DARTS genotype, ...)
    threads: int = bounded(0, ge=0)  # CPU threads for torch (0: the CPUs this process may use, infra/threads.py); bitwise CPU determinism needs the same value
    # Shards of each global batch (train/retrain.batch_size) with per-shard BatchNorm statistics and
    # gradients averaged over shards; 0: one per rank (torchrun). Same value => same numbers on any
    # number of ranks (gmnas_cli/infra/distributed.py).
    batch_shards: int = bounded(0, ge=0)


def register_configs() -> None:
    """Register the schemas; YAML options in ``conf/<group>/`` extend them."""
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
