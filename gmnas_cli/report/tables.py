"""Table builders, one per ``report.table``, each in the layout of a paper table."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pandas as pd

from gmnas_cli.infra.errors import StageError
from gmnas_cli.infra.logging import log
from gmnas_cli.report.collect import (
    ExperimentRecord,
    branching,
    leaf_count,
    retrain_accuracy,
    search_gpu_days,
    split_count,
)
from gmnas_cli.report.context import ReportContext
from gmnas_cli.report.groups import (
    DATASET_NAMES,
    Group,
    algo_label,
    criterion_label,
    group,
    labelled,
    method_label,
)
from gmnas_cli.report.stats import num, pm, summary
from gmnas_cli.report.table import Table
from gmnas_cli.report.table_mobilenet import table_mobilenet


def _tidy(rows: list[dict[str, Any]], key_cols: list[str], column: str, values: list[float]) -> dict[str, Any]:
    return {**{k: rows[-1][k] for k in key_cols}, "column": column, **summary(values)}


def _seeds(seeds: Any) -> int:
    """The ``Seeds`` column: how many distinct seeds a row averages over."""
    return len(set(seeds))


def _seed_list(g: Group) -> int:
    return _seeds(g.seeds)


def _datasets(records: list[ExperimentRecord]) -> str:
    names = dict.fromkeys(str(r.get("dataset.name", "?")) for r in records)
    return ", ".join(DATASET_NAMES.get(n, n) for n in names)


def _stated(title: str, records: list[ExperimentRecord], metric: str) -> str:
    """Every table states its data set and metric."""
    return f"{title}. Data set: {_datasets(records)}; metric: {metric}"


def _sources(records: list[ExperimentRecord], ctx: ReportContext) -> str:
    return ", ".join(dict.fromkeys(ctx.source(r) for r in records)) or "-"


# -- Table 1: split criterion x base algorithm --------------------------------------------------

def table_criteria(records: list[ExperimentRecord], ctx: ReportContext) -> Table:
    """Paper Table 1: Base | Split Criterion | Branch Factor | #Splits | #Supernets | Accuracy."""
    rows, data = [], []
    for g in group(records, label=lambda r: f"{algo_label(r)}|{criterion_label(r)}"):
        accs = [ctx.accuracy(r) for r in g.records]
        rows.append({"Base": algo_label(g.first), "Split Criterion": labelled(g, criterion_label(g.first)),
                     "Branch Factor": branching(g.first), "#Splits": split_count(g.first),
                     "#Supernets": leaf_count(g.first), "Accuracy (%)": pm(accs), "Seeds": _seed_list(g)})
        data.append(_tidy(rows, ["Base", "Split Criterion"], "accuracy", accs))
    display = pd.DataFrame(rows).set_index(["Base", "Split Criterion"])
    title = _stated("Split criteria (paper Table 1): test accuracy (%) of the selected architecture", records,
                    _sources(records, ctx))
    return Table("criteria", title, display, pd.DataFrame(data))


# -- Table 3: NAS-Bench-201 method x dataset ----------------------------------------------------

_METRIC = re.compile(r"^(?P<ds>.+?)_(?P<split>valid|test)$")
_SPLITS = {"valid": "validation", "test": "test", "supernet": "supernet validation"}


def _dataset_figures(rec: ExperimentRecord, ctx: ReportContext) -> dict[tuple[str, str], float]:
    """(dataset, valid|test) -> %: the searched data set's figures, else every parsable figure (transfer)."""
    parsed = {}
    for metric, value in ctx.figures(rec).items():
        if m := _METRIC.match(metric):
            parsed[(m["ds"], m["split"])] = value
    ds = str(rec.get("dataset.name", ""))
    own = {k: v for k, v in parsed.items() if k[0] == ds}
    if own or parsed:
        return own or parsed
    acc = retrain_accuracy(rec)
    return {(ds, "test"): acc} if acc is not None else {}


def _supernet_figures(rec: ExperimentRecord, ctx: ReportContext) -> dict[tuple[str, str], float]:
    """Fallback without any benchmark or retrain: the selected leaf's supernet validation accuracy (%)."""
    sel = rec.selection or {}
    leaf = sel.get("leaf")
    acc = next((c.get("val_acc") for c in sel.get("candidates") or [] if c.get("leaf") == leaf),
               (rec.leaves.get(leaf) or {}).get("val_acc") if isinstance(leaf, int) else None)
    ds = str(rec.get("dataset.name", ""))
    return {(ds, "supernet"): float(acc) * 100.0} if isinstance(acc, (int, float)) else {}


def _column_order(col: tuple[str, str]) -> tuple[int, str, int]:
    ds_order = list(DATASET_NAMES)
    return (ds_order.index(col[0]) if col[0] in ds_order else len(ds_order), col[0], list(_SPLITS).index(col[1]))


def table_nb201(records: list[ExperimentRecord], ctx: ReportContext) -> Table:
    """Paper Table 3: method x (CIFAR-10, CIFAR-100, ImageNet-16-120) x (validation, test), mean ± std."""
    groups = group(records, exclude=("dataset",))
    cells: dict[tuple[int, tuple[str, str]], list[float]] = {}
    seeds: dict[int, set[Any]] = {}
    title = "NAS-Bench-201 (paper Table 3): accuracy (%) of the derived architectures, mean ± std over seeds"
    metric = ("benchmark figures per data set and split (test columns: test figures)"
              if any(ctx.figures(r) for r in records) else "retrained test accuracy")
    for source in (_dataset_figures, _supernet_figures):
        for i, g in enumerate(groups):
            for rec in g.records:
                for col, value in source(rec, ctx).items():
                    cells.setdefault((i, col), []).append(value)
                    seeds.setdefault(i, set()).add(rec.seed)
        if cells:
            break
        log.warning("report: no benchmark figures or retrain results (benchmark=nb201 benchmark.path=... "
                    "adds them); showing the selected leaf's supernet validation accuracy")
        title += " (no benchmark: supernet validation accuracy)"
        metric = "supernet validation accuracy"
    columns = sorted({col for _, col in cells}, key=_column_order)
    if not columns:
        raise StageError("report: no benchmark figures, retrain results or search results for table=nb201 "
                         "in the collected experiments; pass benchmark=nb201 benchmark.path=<table.csv>")
    head = [(DATASET_NAMES.get(ds, ds), _SPLITS[split]) for ds, split in columns]
    # One run per row (e.g. `gmnas run`): show the derived NAS-Bench-201 string itself.
    single = all(len(g.records) == 1 for i, g in enumerate(groups) if i in seeds)
    rows, index, data = [], [], []
    for i, g in enumerate(groups):
        if i not in seeds:
            continue
        label = labelled(g, method_label(g.first))
        index.append(label)
        arch = [(g.first.selection or {}).get("arch", "-")] if single else []
        rows.append([pm(cells.get((i, col), [])) for col in columns] + [_seeds(seeds[i])] + arch)
        data += [{"Method": label, "column": f"{ds}_{split}", **summary(cells.get((i, (ds, split)), []))}
                 for ds, split in columns]
    if ctx.bench is not None:
        best = []
        for ds, split in columns:
            try:
                best.append(num(ctx.bench.best(f"{ds}_{split}")[1]))
            except StageError:
                best.append("-")
        if any(b != "-" for b in best):
            index.append("optimal")
            rows.append([*best, ""] + ([""] if single else []))
    tail = [("Seeds", "")] + ([("Architecture", "")] if single else [])
    display = pd.DataFrame(rows, index=pd.Index(index, name="Method"), columns=pd.MultiIndex.from_tuples([*head, *tail]))
    return Table("nb201", _stated(title, records, metric), display, pd.DataFrame(data))


# -- Table 6: gradient similarity measures ------------------------------------------------------

_SIMILARITIES = {"per_filter_cosine": "Per-Filter-COS", "cosine": "COS", "l2": "L2"}


def table_similarity(records: list[ExperimentRecord], ctx: ReportContext) -> Table:
    """Paper Table 6: accuracy per gradient similarity measure (per-filter cosine, cosine, L2)."""
    groups = group(records, exclude=("criterion.similarity",))
    measures = [m for m in _SIMILARITIES if any(r.get("criterion.similarity") == m for r in records)]
    measures += sorted({str(r.get("criterion.similarity")) for r in records} - set(measures) - {"None"})
    rows, index, data = [], [], []
    for g in groups:
        label = labelled(g, method_label(g.first))
        by = {m: [ctx.accuracy(r) for r in g.records if str(r.get("criterion.similarity")) == m]
              for m in measures}
        index.append(label)
        rows.append([pm(by[m]) for m in measures])
        data += [{"Method": label, "column": m, **summary(by[m])} for m in measures]
    display = pd.DataFrame(rows, index=pd.Index(index, name="Method"),
                           columns=[_SIMILARITIES.get(m, m) for m in measures])
    title = _stated("Gradient similarity measures (paper Table 6): test accuracy (%)", records,
                    _sources(records, ctx))
    return Table("similarity", title, display, pd.DataFrame(data))


# -- Table 7: ranking correlation ---------------------------------------------------------------

def table_ranking(records: list[ExperimentRecord], ctx: ReportContext) -> Table:
    """Paper Table 7: Branching Factor | #Splits | #Supernets | Spearman (and Kendall) per top fraction."""
    ranked = [r for r in records if r.ranking]
    if not ranked:
        raise StageError("report: table=ranking needs ranking.json in the experiments; none of the "
                         f"{len(records)} collected experiments has one")
    kinds = [k for k in ("spearman", "kendall") if any(isinstance(r.ranking.get(k), dict) for r in ranked)]
    keys = {k: list(dict.fromkeys(x for r in ranked for x in (r.ranking.get(k) or {}))) for k in kinds}
    rows, index, data = [], [], []
    for g in group(ranked):
        label = labelled(g, method_label(g.first))
        row: dict[str, Any] = {"Branching Factor": branching(g.first), "#Splits": split_count(g.first),
                               "#Supernets": leaf_count(g.first)}
        for kind in kinds:
            for key in keys[kind]:
                values = [float(v) for r in g.records if isinstance(v := (r.ranking.get(kind) or {}).get(key),
                                                                      (int, float))]
                row[f"{kind.capitalize()} ({key})"] = pm(values, 3)
                data.append({"Method": label, "column": f"{kind}:{key}", **summary(values)})
        row["Seeds"] = _seed_list(g)
        index.append(label)
        rows.append(row)
    display = pd.DataFrame(rows, index=pd.Index(index, name="Method"))
    def stated(r: ExperimentRecord) -> str:
        pop = r.ranking.get("population")
        return (f"{r.ranking.get('estimate', 'estimate')} vs {r.ranking.get('metric', '?')}"
                + (f", top sets of the space's {pop} architectures" if pop else ""))

    metrics = ", ".join(dict.fromkeys(stated(r) for r in ranked))
    return Table("ranking", _stated("Ranking correlation (paper Table 7)", ranked, metrics), display,
                 pd.DataFrame(data))


# -- Table 8: supernet selection criteria -------------------------------------------------------

_CRITERIA = {"val_acc": "validation accuracy", "val_loss": "validation loss", "max": "max",
             "successive_halving": "successive halving"}


def _selection_errors(rec: ExperimentRecord, ctx: ReportContext) -> dict[str, float]:
    """Test error (%) of the leaf each criterion picks; from the candidates when they carry figures."""
    sel = rec.selection or {}
    cands = [c for c in sel.get("candidates") or [] if isinstance(c, dict)]
    figs = [ctx.candidate_figures(rec, c) for c in cands]
    some = next((f for f in figs if f), {})
    # `max` picks by the selection metric (a valid figure may drive it); errors are test figures.
    pick, test = ctx.select_metric(rec, some), ctx.test_metric(rec, some)
    out: dict[str, float] = {}
    if cands and pick and test and all(pick in f and test in f for f in figs):
        picks = {"max": max(range(len(cands)), key=lambda i: figs[i][pick])}
        if all(isinstance(c.get("val_acc"), (int, float)) for c in cands):
            picks["val_acc"] = max(range(len(cands)), key=lambda i: cands[i]["val_acc"])
        if all(isinstance(c.get("val_loss"), (int, float)) for c in cands):
            picks["val_loss"] = min(range(len(cands)), key=lambda i: cands[i]["val_loss"])
        out = {crit: 100.0 - figs[i][test] for crit, i in picks.items()}
    own = str(sel.get("criterion") or rec.get("select.criterion") or "")
    if own and own not in out and (acc := ctx.accuracy(rec)) is not None:
        out[own] = 100.0 - acc
    return out


def table_selection(records: list[ExperimentRecord], ctx: ReportContext) -> Table:
    """Paper Table 8: method x supernet selection criterion -> test error (%), best and mean ± std."""
    rows, data = [], []
    for g in group(records, exclude=("select",), label=lambda r: method_label(r, always_order=True)):
        label = labelled(g, method_label(g.first, always_order=True))
        per = [(r.seed, _selection_errors(r, ctx)) for r in g.records]
        found = {c for _, p in per for c in p}
        for crit in [c for c in _CRITERIA if c in found] + sorted(found - set(_CRITERIA)):
            errs = [p[crit] for _, p in per if crit in p]
            s = summary(errs)
            rows.append({"Method": label, "Supernet selection criterion": _CRITERIA.get(crit, crit),
                         "Best": num(s["min"]), "Avg": pm(errs), "Seeds": _seeds(k for k, p in per if crit in p)})
            data.append({"Method": label, "column": crit, **s})
    if not rows:
        raise StageError("report: no test errors for table=selection (no benchmark figures, no retrain results)")
    display = pd.DataFrame(rows).set_index(["Method", "Supernet selection criterion"])
    display.columns = pd.MultiIndex.from_tuples([("Test Error (%)", "Best"), ("Test Error (%)", "Avg"),
                                                 ("Seeds", "")])
    title = _stated("Supernet selection (paper Table 8): test error (%) of the selected architecture", records,
                    _sources(records, ctx))
    return Table("selection", title, display, pd.DataFrame(data))


# -- Table 4: DARTS space -----------------------------------------------------------------------

def table_darts(records: list[ExperimentRecord], ctx: ReportContext) -> Table:
    """Paper Table 4: Test Error (Best, Avg) | Params (M) | Search Cost (GPU days)."""
    rows, data = [], []
    surrogate = False
    for g in group(records, label=lambda r: method_label(r, always_order=True)):
        label = labelled(g, method_label(g.first, always_order=True))
        errs, params, costs = [], [], []
        for r in g.records:
            surrogate |= retrain_accuracy(r) is None and ctx.accuracy(r) is not None
            errs.append(ctx.test_error(r))
            p = (r.retrain or {}).get("params_m", ctx.figures(r).get("params_m"))
            params.append(float(p) if isinstance(p, (int, float)) else None)
            costs.append(search_gpu_days(r))
        s = summary(errs)
        rows.append({"Architecture": label, "Best": num(s["min"]), "Avg": pm(errs),
                     "Params (M)": num(summary(params)["mean"]),
                     "Search Cost (GPU Days)": num(summary(costs)["mean"], 4), "Seeds": _seed_list(g)})
        data += [{"Architecture": label, "column": c, **summary(v)}
                 for c, v in (("test_error", errs), ("params_m", params), ("search_gpu_days", costs))]
    display = pd.DataFrame(rows).set_index("Architecture")
    display.columns = pd.MultiIndex.from_tuples([("Test Error (%)", "Best"), ("Test Error (%)", "Avg"),
                                                 ("Params (M)", ""), ("Search Cost (GPU Days)", ""),
                                                 ("Seeds", "")])
    note = " (100 - benchmark accuracy where not retrained)" if surrogate else ""
    title = _stated(f"DARTS space (paper Table 4): test error{note}; search cost = supernet search only",
                    records, _sources(records, ctx))
    return Table("darts", title, display, pd.DataFrame(data))


TABLES: dict[str, Callable[[list[ExperimentRecord], ReportContext], Table]] = {
    "criteria": table_criteria,
    "nb201": table_nb201,
    "similarity": table_similarity,
    "ranking": table_ranking,
    "selection": table_selection,
    "darts": table_darts,
    "mobilenet": table_mobilenet,
}
