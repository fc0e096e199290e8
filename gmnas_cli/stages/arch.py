"""``gmnas arch space=... arch='...'``: parameters and MACs of an architecture at the configured
input (``dataset=...``: its channels, classes and ``dataset.image_size``; network size from
``retrain``), and its benchmark figures where ``benchmark=`` is set (NB201 table, NB301 surrogate)."""

from __future__ import annotations

from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from gmnas_cli.analysis.figures import arch_figures
from gmnas_cli.benchmarks import load_benchmark
from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.spaces import build_space


def main(cfg: DictConfig) -> None:
    text = str(cfg.arch or "").strip()
    if not text:
        raise ConfigError(f"arch: pass the architecture string, e.g. arch='<{cfg.space.name} architecture>'")
    ds = cfg.dataset
    space = build_space(cfg.space, int(ds.num_classes), int(ds.in_channels))
    try:
        arch = space.str_to_arch(text)
    except ValueError as err:
        raise ConfigError(f"arch: {err}") from None
    bench = None
    if cfg.benchmark.name != "none":
        bench = load_benchmark(cfg.benchmark)  # a missing table fails before the network is built
    try:
        fig = arch_figures(space, arch, cfg.retrain, int(ds.num_classes), int(ds.in_channels), int(ds.image_size))
    except NotImplementedError as err:
        raise ConfigError(f"arch: {err}") from None
    table = Table(title=f"{cfg.space.name} architecture", show_header=False)
    table.add_column("key")
    table.add_column("value", overflow="fold")
    table.add_row("architecture", space.arch_to_str(arch))
    table.add_row("network", f"C={cfg.retrain.C}, {cfg.retrain.layers} layers, {ds.num_classes} classes "
                             f"(retrain={cfg.retrain.network} settings)")
    table.add_row("parameters", f"{fig.params_m:.2f}M ({fig.params_m * 1e6:,.0f})")
    shape = "x".join(str(v) for v in fig.input_shape)
    table.add_row("MACs", f"{fig.macs_m:.1f}M at input {shape} (dataset={ds.name})")
    figures = bench.query(space.arch_to_str(arch)) if bench is not None else {}
    for k, v in figures.items():
        table.add_row(f"{cfg.benchmark.name}: {k}", "no figure" if v is None else f"{float(v):.2f}")
    Console().print(table)
    print(f"params_m={fig.params_m:.6f} macs_m={fig.macs_m:.3f}"
          + "".join(f" {k}={'none' if v is None else f'{float(v):.4f}'}" for k, v in figures.items()))
