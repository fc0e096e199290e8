"""``gmnas report`` on synthetic experiment directories with the artefacts the stages write."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from omegaconf import DictConfig, OmegaConf

from gmnas_cli.config.schema import Config
from gmnas_cli.experiment.directory import Experiment
from gmnas_cli.infra.errors import ConfigError, StageError
from gmnas_cli.stages.report import main
from tests.conftest import DARTS_V2, SHARED

NATS = SHARED / "nb201" / "nats_bench_test_acc.csv"
NB201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
ARCH_A = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
ARCH_B = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def make_cfg(tmp_path: Path, **over: Any) -> DictConfig:
    """The composed config: schema defaults + the MISSING groups + ``over`` (a nested dict)."""
    base = {"space": {"name": "nb201", "ops": NB201_OPS}, "algo": {"name": "darts"},
            "dataset": {"name": "cifar10"}, "criterion": {"name": "gm"}, "out_dir": str(tmp_path / "outputs"),
            "report": {"experiments": [str(tmp_path / "outputs" / "*")], "out": str(tmp_path / "report")}}
    return OmegaConf.merge(OmegaConf.structured(Config), base, over)


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def make_experiment(tmp_path: Path, seed: int, figures: list[dict[str, float] | None], archs: list[str],
                    **over: Any) -> Path:
    """An experiment with 2 leaves, its config snapshots, tree, search results, curves and selection."""
    cfg = make_cfg(tmp_path, seed=seed, **over)
    exp = Experiment(cfg)
    for stage in ("warmup", "split", "search", "select"):
        exp.snapshot_config(stage)
        exp.mark_done(stage, seconds=3600.0)
    mask = {f"{i}<-{j}": NB201_OPS for i in range(1, 4) for j in range(i)}
    write_json(exp.tree_path, {"nodes": [
        {"id": 0, "parent": None, "depth": 0, "mask": mask, "created_epoch": 0,
         "split": {"edge": "1<-0", "groups": [NB201_OPS[:3], NB201_OPS[3:]], "children": [1, 2], "scores": {}}},
        {"id": 1, "parent": 0, "depth": 1, "mask": {**mask, "1<-0": NB201_OPS[:3]}, "created_epoch": 15},
        {"id": 2, "parent": 0, "depth": 1, "mask": {**mask, "1<-0": NB201_OPS[3:]}, "created_epoch": 15}]})
    cands = []
    for k, (leaf, arch) in enumerate(zip((1, 2), archs)):
        result = {"leaf": leaf, "arch": arch, "val_loss": 0.5 + 0.1 * k + 0.01 * seed, "val_acc": 0.8 - 0.1 * k,
                  "epochs": 3, "seconds": 10.0}
        write_json(exp.search_dir(leaf) / "result.json", result)
        pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [2.0, 1.5, 1.0], "train_acc": [0.3, 0.5, 0.7],
                      "val_loss": [2.1, 1.6, 1.2], "val_acc": [0.3, 0.45, 0.6], "lr": [0.025] * 3,
                      "seconds": [1.0, 1.0, 1.0]}).to_csv(exp.search_dir(leaf) / "curve.csv", index=False)
        cands.append({**result, "benchmark": figures[k]})
    write_json(exp.selection_path, {"criterion": "val_loss", "leaf": 1, "arch": archs[0], "candidates": cands,
                                    "benchmark": figures[0]})
    return exp.root


def figs(c10: float, c100: float = 70.0) -> dict[str, float]:
    return {"cifar10_test": c10, "cifar100_test": c100, "imagenet16_test": 40.0}


@pytest.fixture
def two_seeds(tmp_path: Path) -> Path:
    make_experiment(tmp_path, 0, [figs(94.37), figs(93.0)], [ARCH_A, ARCH_B])
    make_experiment(tmp_path, 1, [figs(93.37), figs(92.0)], [ARCH_A, ARCH_B])
    (tmp_path / "outputs" / "report").mkdir()  # no config/: skipped
    return tmp_path


def test_nb201_table_mean_std_and_files(two_seeds: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(make_cfg(two_seeds))
    out = two_seeds / "report"
    for name in ("nb201.csv", "nb201_raw.csv", "nb201.md", "nb201.tex"):
        assert (out / name).stat().st_size > 0, name
    md = (out / "nb201.md").read_text()
    assert "GM + DARTS" in md and "93.87 ± 0.50" in md and "CIFAR-10" in md
    tex = (out / "nb201.tex").read_text()
    assert r"93.87 $\pm$ 0.50" in tex and "\\begin{tabular}" in tex
    raw = pd.read_csv(out / "nb201_raw.csv")
    row = raw[raw["column"] == "cifar10_test"].iloc[0]
    assert row["mean"] == pytest.approx(93.87) and row["n"] == 2
    # search on CIFAR-10: only CIFAR-10 columns (paper Table 3 searches each data set separately)
    assert "cifar100_test" not in set(raw["column"])
    assert "93.87 ± 0.50" in capsys.readouterr().out
    plots = sorted(p.name for p in (out / "plots").iterdir())
    assert len([p for p in plots if p.startswith("curves_") and p.endswith(".png")]) == 2
    assert len([p for p in plots if p.endswith(".pdf")]) == 2
    assert not any(p.startswith("warmup_epochs") for p in plots)  # warmup_epochs does not vary


def test_lookup_when_selection_has_no_figures(tmp_path: Path) -> None:
    if not NATS.exists():
        pytest.skip(f"shared benchmark file {NATS} is absent (set GMNAS_BENCHMARKS)")
    make_experiment(tmp_path, 0, [None, None], [ARCH_A, ARCH_B])
    bench = {"name": "nb201", "path": str(NATS), "arch_column": "ArchitectureString", "metric": "cifar10_test",
             "columns": {"cifar10_test": "CIFAR10TestAccuracy200Epochs",
                         "cifar100_test": "CIFAR100TestAccuracy200Epochs"}}
    main(make_cfg(tmp_path, benchmark=bench, report={"formats": ["md"], "plots": False}))
    md = (tmp_path / "report" / "nb201.md").read_text()
    assert "94.37" in md and "94.37 ±" not in md  # one seed: the value alone
    assert "optimal" in md  # the benchmark's best, as paper Table 3's last row


def test_ablation_plots(tmp_path: Path) -> None:
    for w, acc in ((0, 90.0), (5, 93.0), (15, 94.0)):
        for seed in (0, 1):
            make_experiment(tmp_path, seed, [figs(acc + seed), figs(80.0)], [ARCH_A, ARCH_B], warmup_epochs=w,
                            name=f"w{w}-s{seed}")
    main(make_cfg(tmp_path, report={"table": "criteria", "formats": ["csv"]}))
    plots = tmp_path / "report" / "plots"
    assert (plots / "warmup_epochs.png").stat().st_size > 0 and (plots / "warmup_epochs.pdf").exists()
    assert not (plots / "splits.png").exists()
    table = pd.read_csv(tmp_path / "report" / "criteria.csv")
    assert len(table) == 3 and table["Split Criterion"].str.contains("warmup_epochs=").all()


@pytest.mark.parametrize("table", ["criteria", "similarity", "selection", "darts"])
def test_other_tables(two_seeds: Path, table: str) -> None:
    main(make_cfg(two_seeds, report={"table": table, "plots": False}))
    assert (two_seeds / "report" / f"{table}.md").read_text().count("\n") >= 3


def test_selection_table_compares_criteria(two_seeds: Path) -> None:
    main(make_cfg(two_seeds, report={"table": "selection", "formats": ["csv"], "plots": False}))
    df = pd.read_csv(two_seeds / "report" / "selection_raw.csv")
    assert set(df["column"]) == {"val_acc", "val_loss", "max"}
    assert df.set_index("column").loc["max", "min"] == pytest.approx(100 - 94.37)


def test_ranking_table(two_seeds: Path) -> None:
    with pytest.raises(StageError, match="ranking.json"):
        main(make_cfg(two_seeds, report={"table": "ranking", "plots": False}))
    for seed, rho in ((0, 0.4), (1, 0.5)):
        name = f"nb201-darts-gm-cifar10-s{seed}"
        write_json(two_seeds / "outputs" / name / "ranking.json",
                   {"spearman": {"all": rho, "top_0.2": rho / 2}, "kendall": {"all": rho / 3}, "n": {"all": 50}})
    main(make_cfg(two_seeds, report={"table": "ranking", "plots": False}))
    md = (two_seeds / "report" / "ranking.md").read_text()
    assert "0.450 ± 0.050" in md and "Spearman (top_0.2)" in md


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="valid: auto, criteria, nb201, similarity, ranking, selection, darts"):
        main(make_cfg(tmp_path, report={"table": "table9"}))
    with pytest.raises(StageError, match="no experiment directory"):
        main(make_cfg(tmp_path))


def test_darts_table_with_surrogate(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    if not (SHARED / "nb301" / "model_v2.onnx").exists():
        pytest.skip(f"shared benchmark folder {SHARED / 'nb301'} is absent (set GMNAS_BENCHMARKS)")
    darts = {"space": {"name": "darts", "ops": ["none", "skip_connect", "sep_conv_3x3"]}, "algo": {"order": 2}}
    make_experiment(tmp_path, 0, [None, None], [DARTS_V2, DARTS_V2], **darts)
    root = make_experiment(tmp_path, 1, [None, None], [DARTS_V2, DARTS_V2], **darts)
    write_json(root / "retrain" / "result.json", {"arch": DARTS_V2, "params_m": 3.3, "test_acc": 97.5,
                                                  "test_error": 2.5, "epochs": 600, "seconds": 1.0})
    bench = {"name": "nb301_surrogate", "path": str(SHARED / "nb301"), "metric": "val_acc"}
    main(make_cfg(tmp_path, benchmark=bench, report={"table": "darts", "formats": ["csv"], "plots": False}))
    df = pd.read_csv(tmp_path / "report" / "darts.csv")
    assert df["Architecture"].tolist() == ["GM + DARTS (2nd)"]
    assert df["Test Error (%) Best"].iloc[0] == pytest.approx(2.5)  # the retrained seed
    assert df["Params (M)"].iloc[0] == pytest.approx(3.3)
    raw = pd.read_csv(tmp_path / "report" / "darts_raw.csv").set_index("column")
    assert raw.loc["test_error", "max"] == pytest.approx(100 - 92.91, abs=0.2)  # surrogate for seed 0
    # search cost = warmup + split + search (3 x 3600 s); the selection stage is not search cost
    assert raw.loc["search_gpu_days", "mean"] == pytest.approx(3 * 3600 / 86400)


def test_seeds_column_counts_seeds_and_one_seed_has_no_std(two_seeds: Path, tmp_path_factory) -> None:
    main(make_cfg(two_seeds, report={"table": "criteria", "formats": ["csv"], "plots": False}))
    df = pd.read_csv(two_seeds / "report" / "criteria.csv", dtype=str)
    assert df["Seeds"].tolist() == ["2"] and df["Accuracy (%)"].tolist() == ["93.87 ± 0.50"]
    one = tmp_path_factory.mktemp("one")
    make_experiment(one, 0, [figs(94.37), figs(93.0)], [ARCH_A, ARCH_B])  # seed 0 alone: Seeds 1, not 0
    main(make_cfg(one, report={"table": "criteria", "formats": ["csv"], "plots": False}))
    df = pd.read_csv(one / "report" / "criteria.csv", dtype=str)
    assert df["Seeds"].tolist() == ["1"] and df["Accuracy (%)"].tolist() == ["94.37"]


@pytest.mark.parametrize("table", ["criteria", "nb201", "similarity", "selection", "darts"])
def test_every_table_states_data_set_and_metric(two_seeds: Path, table: str) -> None:
    main(make_cfg(two_seeds, report={"table": table, "formats": ["md"], "plots": False}))
    first = (two_seeds / "report" / f"{table}.md").read_text().splitlines()[0]
    assert "Data set: CIFAR-10" in first and "metric: " in first
    if table != "nb201":
        assert "metric: cifar10_test" in first


def test_console_lists_architecture_strings_below_the_table(two_seeds: Path) -> None:
    from rich.console import Console

    from gmnas_cli.report.collect import collect
    from gmnas_cli.report.context import ReportContext
    from gmnas_cli.report.render import print_table
    from gmnas_cli.report.tables import TABLES

    rec = collect([str(two_seeds / "outputs" / "*-s0")])
    console = Console(width=70, record=True)
    print_table(TABLES["nb201"](rec, ReportContext()), console)
    text = console.export_text()
    assert all(len(line) <= 70 for line in text.splitlines())
    rows = [line for line in text.splitlines() if line.count("│") > 1]
    assert rows and all("~" not in line for line in rows) and any("A1" in line for line in rows)
    listing = text.split("architectures:", 1)[1]
    assert ARCH_A in "".join(line.strip() for line in listing.splitlines() if not line.strip().endswith(":"))
    for edge in re.findall(r"[a-z0-9_]+~\d", ARCH_A):  # broken at the joints only: every edge whole
        assert f"|{edge}|" in listing


def test_valid_metric_drives_selection_but_test_columns_show_test(tmp_path: Path) -> None:
    """nb201_v11: benchmark.metric=cifar10_valid; the reported accuracy is the test figure."""
    v11 = [{"cifar10_valid": 90.0, "cifar10_test": 93.5}, {"cifar10_valid": 91.0, "cifar10_test": 92.5}]
    make_experiment(tmp_path, 0, v11, [ARCH_A, ARCH_B], benchmark={"metric": "cifar10_valid"})
    main(make_cfg(tmp_path, report={"table": "criteria", "formats": ["csv"], "plots": False}))
    assert pd.read_csv(tmp_path / "report" / "criteria.csv", dtype=str)["Accuracy (%)"].tolist() == ["93.50"]
    main(make_cfg(tmp_path, report={"table": "selection", "formats": ["csv"], "plots": False}))
    raw = pd.read_csv(tmp_path / "report" / "selection_raw.csv").set_index("column")
    # max picks leaf 2 by the valid figure (91.0) and reports its test error (100 - 92.5)
    assert raw.loc["max", "mean"] == pytest.approx(7.5)
    assert raw.loc["val_loss", "mean"] == pytest.approx(6.5)


def test_cifar100_search_reports_cifar100_figures(tmp_path: Path) -> None:
    make_experiment(tmp_path, 0, [figs(94.0, 71.0), figs(93.0, 73.0)], [ARCH_A, ARCH_B],
                    dataset={"name": "cifar100", "num_classes": 100}, benchmark={"metric": "cifar10_test"})
    main(make_cfg(tmp_path, report={"table": "selection", "formats": ["csv", "md"], "plots": False}))
    raw = pd.read_csv(tmp_path / "report" / "selection_raw.csv").set_index("column")
    assert raw.loc["max", "mean"] == pytest.approx(100 - 73.0)  # best on CIFAR-100, not on CIFAR-10
    assert "metric: cifar100_test" in (tmp_path / "report" / "selection.md").read_text()


def test_auto_table_is_the_paper_table_of_the_experiments_space(tmp_path):
    from gmnas_cli.report.collect import ExperimentRecord
    from gmnas_cli.stages.report import pick_table, table_for

    def rec(space: str, criterion: str = "gm", **cfg) -> ExperimentRecord:
        ops = ["skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
        spec = {"name": "nb201", "ops": ops} if space == "nb201_4ops" else {"name": space, "ops": ["none", *ops]}
        return ExperimentRecord(space, tmp_path, {"space": spec, "criterion": {"name": criterion}, **cfg})

    assert table_for([rec("darts"), rec("darts")]) == "darts"  # paper Table 4
    assert table_for([rec("mobilenet")]) == "mobilenet" and table_for([rec("ofa_mbv3")]) == "ofa"
    # the 4-op space comparing criteria (gmnas run -m space=nb201_4ops criterion=gm,exhaustive,random): Table 1
    name, why = pick_table([rec("nb201_4ops", c) for c in ("gm", "exhaustive", "random")])
    assert name == "criteria" and "Table 1" in why and "exhaustive, gm, random" in why
    assert table_for([rec("nb201")]) == "nb201"  # Table 3
    assert table_for([rec("nb201", select={"criterion": c}) for c in ("val_loss", "max")]) == "selection"
    sims = [rec("nb201") for _ in range(2)]
    for r, s in zip(sims, ("cosine", "l2")):
        r.config["criterion"]["similarity"] = s
    assert table_for(sims) == "similarity"
    assert table_for([rec("darts"), rec("nb201")]) == "nb201"  # mixed spaces: Table 3's layout, as before
