"""OFA tables: paper Table 5's OFA rows (``report.table=ofa``) and Table 9 (``report.table=ofa_splits``).

Table 5 columns: Top-1 / Top-5 test error (%), Params (M), MFLOPs (MACs), search cost. The paper's
search cost for OFA counts only the evolutionary search (Table 5 note): the leaves' evolution
wall-clock in days (``search/<leaf>/result.json`` ``evolution.seconds``). Top-5 is
shown when a retrain result records it. Table 9: Top-1 test error and the improvement over the
One-Shot OFA row (``criterion=none``) of the same report.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from gmnas_cli.config.derived import criterion_splits
from gmnas_cli.infra.errors import StageError
from gmnas_cli.report.collect import ExperimentRecord, leaf_count, search_gpu_days, split_count
from gmnas_cli.report.context import ReportContext
from gmnas_cli.report.groups import group, labelled, method_label
from gmnas_cli.report.stats import num, pm, summary
from gmnas_cli.report.tables import TABLES, Table


def _selected(rec: ExperimentRecord) -> dict[str, Any]:
    """The selected leaf's search result (params, MFLOPs of the evolved subnet)."""
    sel = rec.selection or {}
    return next((c for c in sel.get("candidates") or [] if c.get("leaf") == sel.get("leaf")), {})


def _splits(rec: ExperimentRecord) -> bool:
    """Whether the experiment's criterion splits (``Criterion.splits``; One-Shot's does not)."""
    crit = rec.get("criterion.name")
    return crit is None or criterion_splits(str(crit))


def _ofa_records(records: list[ExperimentRecord], name: str) -> list[ExperimentRecord]:
    recs = [r for r in records if str(r.get("algo.name", "")) == "ofa"]
    if not recs:
        raise StageError(f"report: table={name} needs experiments with algo=ofa; none among the collected ones")
    return recs


def evolution_gpu_days(rec: ExperimentRecord) -> float | None:
    """Summed evolution time of the leaves in days (Table 5 counts only the evolutionary search)."""
    secs = [((leaf or {}).get("evolution") or {}).get("seconds") for leaf in rec.leaves.values()]
    secs = [s for s in secs if isinstance(s, (int, float))]
    return sum(secs) / 86400.0 if secs else search_gpu_days(rec)


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) else None


def table_ofa(records: list[ExperimentRecord], ctx: ReportContext) -> Table:
    """Paper Table 5, OFA rows: Top-1 | Top-5 | Params (M) | MFLOPs | Search cost (GPU days)."""
    rows, data = [], []
    for g in group(_ofa_records(records, "ofa")):
        label = labelled(g, method_label(g.first) + " (Large)")
        top1, top5, params, mflops, cost = [], [], [], [], []
        for r in g.records:
            top1.append(ctx.test_error(r))
            top5.append(_number((r.retrain or {}).get("test_error_top5")))
            sel = _selected(r)
            params.append(_number((r.retrain or {}).get("params_m", sel.get("params_m"))))
            mflops.append(_number(sel.get("mflops")))
            cost.append(evolution_gpu_days(r))
        rows.append({"Architecture": label, "Top-1 (%)": pm(top1), "Top-5 (%)": pm(top5),
                     "Params (M)": num(summary(params)["mean"]), "MFLOPs": num(summary(mflops)["mean"]),
                     "Search Cost (GPU Days)": num(summary(cost)["mean"], 4), "#Supernets": leaf_count(g.first)})
        data += [{"Architecture": label, "column": c, **summary(v)} for c, v in
                 (("top1_error", top1), ("top5_error", top5), ("params_m", params), ("mflops", mflops),
                  ("search_gpu_days", cost))]
    display = pd.DataFrame(rows).set_index("Architecture")
    return Table("ofa", "MobileNet space, OFA (paper Table 5): ImageNet test error", display, pd.DataFrame(data))


def table_ofa_splits(records: list[ExperimentRecord], ctx: ReportContext) -> Table:
    """Paper Table 9: Top-1 test error | improvement over the One-Shot OFA row."""
    groups = group(_ofa_records(records, "ofa_splits"))
    errs = {g.key: summary([ctx.test_error(r) for r in g.records])["mean"] for g in groups}
    base = next((errs[g.key] for g in groups if not _splits(g.first)), None)  # the One-Shot row
    rows, data = [], []
    for g in groups:
        label = labelled(g, method_label(g.first))
        if split_count(g.first) > 0:
            label += f" ({split_count(g.first)} splits, {leaf_count(g.first)} supernets)"
        e = errs[g.key]
        gain = None if base is None or e is None or not _splits(g.first) else base - e
        rows.append({"Method": label, "Top-1 Test Error (%)": num(e), "Improvement over OFA": num(gain)})
        data.append({"Method": label, "column": "top1_error", **summary([ctx.test_error(r) for r in g.records])})
    return Table("ofa_splits", "OFA with more splits (paper Table 9)", pd.DataFrame(rows).set_index("Method"),
                 pd.DataFrame(data))


TABLES.setdefault("ofa", table_ofa)
TABLES.setdefault("ofa_splits", table_ofa_splits)
