"""Structured config schemas (dataclasses) registered in Hydra's ConfigStore.

Every YAML file under ``conf/`` is merged into these typed nodes, so an unknown key or a
wrongly typed value fails at start-up, naming the key. Defaults trace to the paper
(Appendix D) or to ``DESIGN.md``; the comments say which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from gmnas_cli.config.bounds import bounded


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Resume(str, Enum):
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
    ops: list[str] = MISSING  # candidate ops, in the space's canonical order
    C: int = 16  # NB201: C=16 (DESIGN.md); DARTS supernet: C=16
    N: int = 5  # cells per stage; NB201: 5 (DESIGN.md); DARTS: 2 normal cells per stage = 8 cells (D.2)
    nodes: int = 4  # intermediate nodes per cell
    unsplittable_ops: list[str] = field(default_factory=list)  # DARTS: ["none"] (DESIGN.md)
    split_cells: list[str] = field(default_factory=lambda: ["normal"])  # DARTS: normal cells only
    width_mult: float = 1.0  # MobileNet space
    expand_ratios: list[int] = field(default_factory=list)
    kernel_sizes: list[int] = field(default_factory=list)
    stages: list[Any] = field(default_factory=list)


@dataclass
class AlgoConfig:
    """A base weight-sharing algorithm; ``name`` keys ``ALGORITHMS``."""

    name: str = MISSING
    order: int = 1  # DARTS: 1st or 2nd order
    arch_lr: float = 3e-4  # Adam on alpha (Appendix D / DESIGN.md)
    arch_betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    arch_weight_decay: float = 1e-3
    tau_max: float = 1.0  # SNAS/GDAS temperature schedule (DESIGN.md: 1 -> 0.1)
    tau_min: float = 0.1
    eval_archs: int = bounded(200, ge=1)  # RSPS: distinct sampled paths scored at derivation (official rsws_project: 200)
    eval_batches: int = bounded(0, ge=0)  # RSPS: architecture-half minibatches per path; 0: the whole half (official)
    eval_batch_size: int = bounded(0, ge=0)  # RSPS derivation minibatch size; 0: train.batch_size (official valid_queue)
    unrolled_eps: float = 0.01  # DARTS 2nd order finite-difference scale (Liu et al. 2019)
    unrolled_step: UnrolledStep = UnrolledStep.official  # official _compute_unrolled_model (also with Nesterov)


@dataclass
class TrainConfig:
    """Supernet weight training (Appendix D / DESIGN.md, NB201 settings)."""

    batch_size: int = bounded(48, ge=1)
    lr: float = bounded(0.025, gt=0)
    lr_min: float = bounded(0.001, ge=0)
    momentum: float = bounded(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = 5e-4
    grad_clip: float = 5.0
    augment: bool = True  # random crop + flip for image data sets
    log_every: int = 0  # steps between log lines (0: once per epoch)
    max_steps_per_epoch: int = 0  # 0: full epoch; >0 caps steps (smoke tests)
    # Search-phase schedule: restart = cosine/tau over search_epochs (official DARTS space,
    # --fix_sche 1); run = over the whole run's epochs (official NB201). Split phase: whole run always.
    search_schedule: SearchSchedule = SearchSchedule.restart


@dataclass
class DatasetConfig:
    """A data set read from disk (never downloaded); ``name`` keys ``DATASETS``."""

    name: str = MISSING
    root: str = ""
    num_classes: int = 10
    in_channels: int = 3
    image_size: int = 32
    limit: int = 0  # 0: all images; >0 keeps the first `limit` training images (smoke tests)
    test_limit: int = 0


@dataclass
class CriterionConfig:
    """Splitting criterion; ``name`` keys ``CRITERIA`` (gm, exhaustive, random, none)."""

    name: str = MISSING
    batches: int = 100  # GM: minibatches averaged (DESIGN.md)
    similarity: Similarity = Similarity.cosine  # paper Table 6
    edge_selection: Any = "cut_cost"  # "cut_cost" | "random" (one permutation: same edges in every branch) | "random_per_node" | edge list
    cut: Cut = Cut.balanced  # Eqn. 3, Appendix B.3's ncut, or the official DARTS-space `within` rule
    average: GradientAverage = GradientAverage.distance  # official split_supernet / App. B.2: mean of distances
    scored_weight: ScoredWeight = ScoredWeight.one_hot  # official NB201 (DARTS-space presets: softmax)
    augment: bool = True  # official: GM scores augmented training minibatches (next(iter(train_queue)))
    early_stop: bool = False  # sequential confidence test on per-minibatch costs (criteria/gm.py)
    confidence: float = bounded(3.0, gt=0)  # early stop: win margin in standard errors
    early_stop_min_batches: int = bounded(10, ge=2)  # never stop before this many minibatches
    batched_ops: bool = False


@dataclass
class SuccessiveHalvingConfig:
    """Appendix C, Algorithm 3: short retrains on a schedule of epochs per rung."""

    schedule: list[int] = field(default_factory=lambda: [10, 20, 40])
    eta: int = 2


@dataclass
class SelectConfig:
    criterion: SelectCriterion = SelectCriterion.val_loss
    successive_halving: SuccessiveHalvingConfig = field(default_factory=SuccessiveHalvingConfig)


@dataclass
class RetrainConfig:
    """Evaluation protocol (DARTS: Appendix D.2); presets in ``conf/retrain/``."""

    epochs: int = 600
    C: int = 36
    layers: int = 20
    batch_size: int = 96
    lr: float = 0.025
    momentum: float = 0.9
    weight_decay: float = 3e-4
    cutout: int = 16
    drop_path: float = 0.3
    auxiliary_weight: float = 0.4
    grad_clip: float = 5.0
    max_steps_per_epoch: int = 0
    network: str = "cifar"  # DARTS space: cifar (NetworkCIFAR) | imagenet (mobile setting, NetworkImageNet)
    lr_min: float = 0.0  # cosine floor (DARTS train.py: CosineAnnealingLR, eta_min 0)
    lr_schedule: str = "cosine"  # cosine | exponential (DARTS ImageNet: lr * lr_gamma**epoch)
    lr_gamma: float = 0.97  # exponential decay per epoch (DARTS train_imagenet.py)
    nesterov: bool = False  # DARTS: plain momentum; NAS-Bench-201 protocol: Nesterov
    label_smoothing: float = 0.0  # DARTS ImageNet: 0.1


@dataclass
class BenchmarkConfig:
    """Benchmark lookup (NAS-Bench-201 tables, NB301 surrogate) or none."""

    name: str = "none"
    path: str = ""
    arch_column: str = "arch"
    columns: dict[str, str] = field(default_factory=dict)  # metric name -> column
    metric: str = ""  # the metric `select.criterion=max` maximises
    epoch: int = 98  # NB301 surrogate query epoch


@dataclass
class ReportConfig:
    table: str = "nb201"
    experiments: list[str] = field(default_factory=lambda: ["outputs/*"])
    out: str = "outputs/report"
    formats: list[str] = field(default_factory=lambda: ["csv", "md", "tex"])
    plots: bool = True


@dataclass
class RankConfig:
    """Ranking correlation (paper 5.2, Table 7): sub-supernet estimates against a benchmark."""

    samples: int = 200  # uniformly sampled architectures for the "all" row
    top: list[float] = field(default_factory=lambda: [0.2, 0.5, 1.0])  # top percent by benchmark
    batches: int = 4  # validation minibatches per architecture estimate
    estimate: str = "val_acc"  # val_acc | neg_val_loss


@dataclass
class BenchConfig:
    """``gmnas bench`` (gmnas_cli/bench.py); defaults keep ``make bench`` under 3 min on 2 CPU cores."""

    batch_size: int = 64
    image_size: int = 32
    steps: int = 3  # timed search steps per implementation, alternating ours/reference (ABBA)
    warmup_steps: int = 1  # untimed steps per implementation first (CPU: peak memory measured here)
    reference: str = "none"  # none | xautodl
    out: str = "outputs/bench"  # a directory (bench.csv inside) or a .csv path
    gm_probe_batches: int = 1  # minibatches timed on one edge (configured size), extrapolated; 0: skip
    gm_compare: bool = True  # full small split with and without criterion.early_stop (proxy below)
    gm_C: int = 4  # proxy supernet of the early-stop comparison
    gm_N: int = 1
    gm_image_size: int = 8
    gm_batch_size: int = 16
    gm_batches: int = 40  # scoring minibatches of the proxy split (0: criterion.batches)
    gm_warm_steps: int = 20  # weight steps on the proxy before scoring
    threads: int = 1  # CPU: torch threads while benchmarking (0: keep `threads`); 1 is robust on shared cores


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

    name: str = ""  # experiment directory name; "" builds one from space/algo/criterion/dataset/seed
    out_dir: str = "outputs"
    seed: int = 0
    device: Device = Device.auto
    deterministic: bool = False
    warmup_epochs: int = 15  # NB201 DARTS/SNAS: splits at epochs 15 and 30 (DESIGN.md)
    splits: int = 2
    branching: Any = 2  # one value, or a list with one value per split
    search_epochs: int = 30
    restart: bool = True  # paper 3.4 "Supernet splitting with restart"
    force: bool = False
    resume: Resume = Resume.auto
    leaf: Any = None  # search: one leaf id (None: all leaves)
    amp: bool = True  # CUDA only: bf16 autocast
    channels_last: bool = True  # CUDA only
    quiet: bool = False  # no progress bars
    threads: int = 0  # CPU threads for torch (0: torch's default); bitwise CPU determinism needs the same value


def register_configs() -> None:
    """Register the schemas; YAML options in ``conf/<group>/`` extend them."""
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
