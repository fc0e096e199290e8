"""``gmnas report``: tables (paper Tables 1, 3, 4, 6, 7, 8) and plots across experiment directories."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from gmnas_cli.benchmarks import load_benchmark
from gmnas_cli.infra.errors import ConfigError, StageError
from gmnas_cli.infra.logging import log
from gmnas_cli.report import ofa_tables  # noqa: F401  (registers table=ofa, ofa_splits)
from gmnas_cli.report.collect import ExperimentRecord, collect
from gmnas_cli.report.context import ReportContext
from gmnas_cli.report.plots import write_plots
from gmnas_cli.report.render import check_formats, print_table, write_table
from gmnas_cli.report.split_plots import write_split_plots
from gmnas_cli.report.tables import TABLES
from gmnas_cli.spaces import SPACES, SearchSpace


def _space(rec: ExperimentRecord) -> tuple[str, tuple[str, ...]]:
    """The searched space: its option name and its ops (NB201's 4-op variant differs by its ops)."""
    ops = rec.get("space.ops")
    return str(rec.get("space.name", SearchSpace.report_table)), tuple(ops) if ops is not None else ()


def _varies(records: list[ExperimentRecord], key: str) -> list[str]:
    values = sorted({str(r.get(key)) for r in records})
    return values if len(values) > 1 else []


def pick_table(records: list) -> tuple[str, str]:
    """The table ``report.table=auto`` picks and why: the paper's table for the experiments' space
    and what varies among them. NAS-Bench-201: the selection criterion varying is Table 8, the
    similarity measure Table 6, rankings in every experiment Table 7; on the 4-op space the split
    criterion comparison is Table 1; else Table 3 (also for mixed spaces)."""
    spaces = sorted({_space(r) for r in records})
    if len(spaces) > 1:
        shown = ", ".join(sorted({f"{n} ({len(o)} ops)" for n, o in spaces}))
        return SearchSpace.report_table, f"paper Table 3 layout: the experiments mix spaces ({shown})"
    space, ops = spaces[0]
    cls = SPACES[space] if space in SPACES else SearchSpace
    if cls.report_table != SearchSpace.report_table:  # the space's own paper table (SearchSpace.report_table)
        return cls.report_table, f"the paper table of the {space} space"
    if selects := _varies(records, "select.criterion"):
        return "selection", f"paper Table 8: the selection criterion varies ({', '.join(selects)})"
    if sims := _varies(records, "criterion.similarity"):
        return "similarity", f"paper Table 6: the gradient similarity varies ({', '.join(sims)})"
    if all(r.ranking for r in records):
        return "ranking", "paper Table 7: every experiment holds a ranking (gmnas rank)"
    if (criteria := cls.criteria_table(list(ops))) is not None:
        crits = _varies(records, "criterion.name")
        why = f"the split criterion varies ({', '.join(crits)})" if crits else "its split criteria table"
        return criteria, f"paper Table 1: the {space} space with {len(ops)} ops, {why}"
    return SearchSpace.report_table, f"paper Table 3: the {space} space"


def table_for(records: list) -> str:
    """The name of the table ``report.table=auto`` picks (``pick_table``)."""
    return pick_table(records)[0]


def main(cfg: DictConfig) -> None:
    """Collect ``cfg.report.experiments``, build ``cfg.report.table``, print it and write files/plots."""
    rep = cfg.report
    name = str(rep.table)
    if name not in TABLES and name != "auto":
        raise ConfigError(f"report.table={name!r} is unknown; valid: auto, {', '.join(TABLES)}")
    formats = [str(f) for f in rep.formats]
    check_formats(formats)
    patterns = [str(p) for p in rep.experiments] or [str(Path(str(cfg.out_dir)) / "*")]
    records = collect(patterns)
    if not records:
        raise StageError(f"report: no experiment directory (with config/ snapshots) matches "
                         f"{', '.join(patterns)}")
    bench_cfg = cfg.get("benchmark")
    bench = load_benchmark(bench_cfg) if bench_cfg is not None else None
    metric = str(OmegaConf.select(cfg, "benchmark.metric", default="") or "") if bench is not None else ""
    ctx = ReportContext(bench=bench, metric=metric)
    if name == "auto":
        name, why = pick_table(records)
        print(f"report.table=auto: {name} ({why}); report.table=<name> picks another", flush=True)
    table = TABLES[name](records, ctx)
    print_table(table)
    out = Path(str(rep.out)) if str(rep.out) else Path(str(cfg.out_dir)) / "report"
    written = write_table(table, out, formats)
    if rep.plots:
        written += write_plots(records, ctx, out / "plots")
        for rec in records:  # what each experiment's split decided (paper Appendix B.1)
            selected = (rec.selection or {}).get("leaf")
            written += write_split_plots(rec.name, rec.tree, rec.leaves, selected, out / "plots" / f"split_{rec.name}")
    log.info(f"report: {len(records)} experiments -> {len(written)} files in {out}")
