"""``gmnas arch space=... arch='...'``: parameters and MACs of an architecture, and its benchmark
figures where ``benchmark=`` is set (NB201 table, NB301 surrogate).

The input is the space's natural one (``SearchSpace.natural_input``: ImageNet's 224 px, 3 channels and
1000 classes for the MobileNet spaces, CIFAR-10's for the cell spaces) unless the command line names
a data set (``dataset=...``, ``dataset.*=...`` or an ``experiment=`` preset): then its channels,
classes and ``dataset.image_size``. The network's size comes from ``retrain`` where the space reads it.
"""

from __future__ import annotations

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from gmnas_cli.analysis.figures import arch_figures
from gmnas_cli.benchmarks import benchmark_enabled, load_benchmark
from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.spaces import SPACES, NaturalInput, build_space


def named_dataset(overrides: list[str], experiment: str | None) -> bool:
    """Whether the command line chose the data set: a ``dataset`` override or an experiment preset."""
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    return experiment is not None or any(k == "dataset" or k.startswith("dataset.") for k in keys)


def command_line() -> tuple[list[str], str | None]:
    """The command line's overrides and ``experiment=`` choice (Hydra's record of this run)."""
    if not HydraConfig.initialized():
        return ["dataset"], None  # called outside a Hydra run: the config's data set is the one meant
    hc = HydraConfig.get()
    experiment = hc.runtime.choices.get("experiment")
    return list(hc.overrides.task), None if experiment in (None, "null") else str(experiment)


def arch_input(cfg: DictConfig) -> tuple[NaturalInput, str]:
    """The input the figures are given at, and where it comes from (for the MACs row)."""
    if named_dataset(*command_line()):
        ds = cfg.dataset
        return NaturalInput(int(ds.image_size), int(ds.in_channels), int(ds.num_classes)), f"dataset={ds.name}"
    return SPACES[str(cfg.space.name)].natural_input, f"space={cfg.space.name}'s natural input"


def main(cfg: DictConfig) -> None:
    text = str(cfg.arch or "").strip()
    if not text:
        raise ConfigError(f"arch: pass the architecture string, e.g. arch='<{cfg.space.name} architecture>'")
    given, source = arch_input(cfg)
    space = build_space(cfg.space, given.num_classes, given.in_channels, given.image_size)
    try:
        arch = space.str_to_arch(text)
    except ValueError as err:
        raise ConfigError(f"arch: {err}") from None
    bench = None
    if benchmark_enabled(cfg.benchmark):
        bench = load_benchmark(cfg.benchmark)  # a missing table fails before the network is built
    try:
        fig = arch_figures(space, arch, cfg.retrain, given.num_classes, given.in_channels, given.image_size)
    except NotImplementedError as err:
        raise ConfigError(f"arch: {err}") from None
    table = Table(title=f"{cfg.space.name} architecture", show_header=False)
    table.add_column("key")
    table.add_column("value", overflow="fold")
    table.add_row("architecture", space.arch_to_str(arch))
    table.add_row("network", space.network_summary(cfg.retrain, given.num_classes))
    table.add_row("parameters", f"{fig.params_m:.3f}M ({fig.params_m * 1e6:,.0f})")
    shape = "x".join(str(v) for v in fig.input_shape)
    table.add_row("MACs", f"{fig.macs_m:.1f}M at input {shape} ({source})")
    figures = bench.query(space.arch_to_str(arch)) if bench is not None else {}
    for k, v in figures.items():
        table.add_row(f"{cfg.benchmark.name}: {k}", "no figure" if v is None else f"{float(v):.2f}")
    Console().print(table)
    print(f"params_m={fig.params_m:.6f} macs_m={fig.macs_m:.3f}"
          + "".join(f" {k}={'none' if v is None else f'{float(v):.4f}'}" for k, v in figures.items()))
