"""`gmnas report` over a real two-seed sweep of the smoke preset (paper Table 3 layout)."""

from __future__ import annotations

import pytest

from tests._reliability import copy_experiment, run_inproc
from tests.conftest import run_cli


@pytest.mark.slow  # a real `-m seed=0,1` multirun: about 45 s; `make test-cluster` (CI) runs it
def test_report_over_a_two_seed_sweep(tmp_path, smoke_run, capsys):
    copy_experiment(smoke_run, tmp_path)  # the seed-0 job of the sweep finds its experiment complete
    sweep = run_cli("run", "experiment=smoke", f"out_dir={tmp_path}", "-m", "seed=0,1")
    assert sweep.returncode == 0, sweep.stderr
    assert "warmup: already complete" in sweep.stderr and "warmup/node0 epoch 1/" in sweep.stderr  # s0, s1
    assert {p.name for p in tmp_path.glob("nb201-*")} == {"nb201-darts-gm-digits-s0", "nb201-darts-gm-digits-s1"}
    out = tmp_path / "report"
    capsys.readouterr()
    code, err = run_inproc("report", f"report.experiments=[{tmp_path}/nb201-*]", f"report.out={out}",
                           "report.table=nb201")
    stdout = capsys.readouterr().out
    assert code == 0, err
    md = (out / "nb201.md").read_text()
    assert "±" in md and "GM + DARTS" in md  # one row: mean ± std over seeds 0 and 1
    import pandas as pd

    assert pd.read_csv(out / "nb201.csv")["Seeds"].tolist() == [2]  # the number of seeds
    for ext in ("csv", "md", "tex"):
        assert (out / f"nb201.{ext}").stat().st_size > 0
    assert "\\pm" in (out / "nb201.tex").read_text() or "±" in (out / "nb201.tex").read_text()
    plots = {p.suffix for p in (out / "plots").rglob("*")}
    assert {".png", ".pdf"} <= plots
    assert "nb201" in stdout or "NAS-Bench-201" in stdout + err
