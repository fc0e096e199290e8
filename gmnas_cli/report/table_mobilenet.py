"""Paper Table 5 (MobileNet space on ImageNet): top-1/top-5 test error, params, MFLOPs, search cost."""

from __future__ import annotations

from typing import Any

import pandas as pd

from gmnas_cli.report.collect import ExperimentRecord, search_gpu_days
from gmnas_cli.report.context import ReportContext
from gmnas_cli.report.groups import group, labelled, method_label
from gmnas_cli.report.stats import num, pm, summary
from gmnas_cli.report.table import Table


def _value(rec: ExperimentRecord, key: str) -> float | None:
    """``key`` from the retrain result, else from the selected leaf's search result."""
    leaf = (rec.selection or {}).get("leaf")
    for src in (rec.retrain or {}, rec.leaves.get(leaf, {}) if leaf is not None else {}):
        v = src.get(key)
        if isinstance(v, (int, float)):
            return float(v)
    return None


def table_mobilenet(records: list[ExperimentRecord], ctx: ReportContext) -> Table:
    """Architecture | Test Error (%) top-1, top-5 | Params (M) | FLOPs (M) | Search Cost (GPU days) | Seeds."""

    rows, data = [], []
    for g in group(records):
        label = labelled(g, method_label(g.first))
        cols: dict[str, list[Any]] = {"top1": [], "top5": [], "params_m": [], "mflops": [], "cost": []}
        for r in g.records:
            cols["top1"].append(ctx.test_error(r))
            cols["top5"].append(_value(r, "test_top5_error"))
            cols["params_m"].append(_value(r, "params_m"))
            cols["mflops"].append(_value(r, "mflops"))
            cols["cost"].append(search_gpu_days(r))
        rows.append({"Architecture": label, "top-1": pm(cols["top1"]), "top-5": pm(cols["top5"]),
                     "Params (M)": num(summary(cols["params_m"])["mean"]),
                     "FLOPs (M)": num(summary(cols["mflops"])["mean"], 0),
                     "Search Cost (GPU days)": num(summary(cols["cost"])["mean"], 4),
                     "Seeds": ",".join(str(s) for s in g.seeds)})
        data += [{"Architecture": label, "column": c, **summary(v)} for c, v in
                 (("test_error", cols["top1"]), ("test_top5_error", cols["top5"]), ("params_m", cols["params_m"]),
                  ("mflops", cols["mflops"]), ("search_gpu_days", cols["cost"]))]
    display = pd.DataFrame(rows).set_index("Architecture") if rows else pd.DataFrame()
    if rows:
        display.columns = pd.MultiIndex.from_tuples([("Test Error (%)", "top-1"), ("Test Error (%)", "top-5"),
                                                     ("Params (M)", ""), ("FLOPs (M)", ""),
                                                     ("Search Cost (GPU days)", ""), ("Seeds", "")])
    return Table("mobilenet", "MobileNet space on ImageNet (paper Table 5): test error, params, MFLOPs (MACs)",
                 display, pd.DataFrame(data))
