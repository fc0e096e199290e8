"""``gmnas report``: tables (paper Tables 1, 3, 4, 6, 7, 8) and plots across experiment directories."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from gmnas_cli.benchmarks import load_benchmark
from gmnas_cli.infra.errors import ConfigError, StageError
from gmnas_cli.infra.logging import log
from gmnas_cli.report import ofa_tables  # noqa: F401  (registers table=ofa, ofa_splits)
from gmnas_cli.report.collect import collect
from gmnas_cli.report.context import ReportContext
from gmnas_cli.report.plots import write_plots
from gmnas_cli.report.render import check_formats, print_table, write_table
from gmnas_cli.report.split_plots import write_split_plots
from gmnas_cli.report.tables import TABLES

# report.table=auto: the paper table of the experiments' space (Table 3 NB201, 4 DARTS, 5 MobileNet and OFA)
SPACE_TABLES = {"darts": "darts", "mobilenet": "mobilenet", "ofa_mbv3": "ofa"}


def table_for(records: list) -> str:
    """The table ``report.table=auto`` picks: the space's table when every experiment shares one
    space with its own table, else NAS-Bench-201's (Table 3, the default before ``auto``)."""
    spaces = {str(r.get("space.name", "nb201")) for r in records}
    return SPACE_TABLES.get(spaces.pop(), "nb201") if len(spaces) == 1 else "nb201"


def main(cfg: DictConfig) -> None:
    """Collect ``cfg.report.experiments``, build ``cfg.report.table``, print it and write files/plots."""
    rep = cfg.report
    name = str(rep.table)
    if name not in TABLES and name != "auto":
        raise ConfigError(f"report.table={name!r} is unknown; valid: auto, {', '.join(TABLES)}")
    formats = [str(f) for f in rep.formats]
    check_formats(formats)
    patterns = [str(p) for p in rep.experiments]
    records = collect(patterns)
    if not records:
        raise StageError(f"report: no experiment directory (with config/ snapshots) matches "
                         f"{', '.join(patterns)}")
    bench_cfg = cfg.get("benchmark")
    bench = load_benchmark(bench_cfg) if bench_cfg is not None else None
    metric = str(OmegaConf.select(cfg, "benchmark.metric", default="") or "") if bench is not None else ""
    ctx = ReportContext(bench=bench, metric=metric)
    if name == "auto":
        name = table_for(records)
    table = TABLES[name](records, ctx)
    print_table(table)
    out = Path(str(rep.out))
    written = write_table(table, out, formats)
    if rep.plots:
        written += write_plots(records, ctx, out / "plots")
        for rec in records:  # what each experiment's split decided (paper Appendix B.1)
            selected = (rec.selection or {}).get("leaf")
            written += write_split_plots(rec.name, rec.tree, rec.leaves, selected, out / "plots" / f"split_{rec.name}")
    log.info(f"report: {len(records)} experiments -> {len(written)} files in {out}")
