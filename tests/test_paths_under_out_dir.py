"""Every default output path lies under ``out_dir``, whatever the working directory."""

from __future__ import annotations

from tests._reliability import copy_experiment, run_inproc


def test_report_defaults_follow_out_dir_not_the_working_directory(tmp_path, small_ref, monkeypatch):
    out_dir, cwd = tmp_path / "x", tmp_path / "elsewhere"
    cwd.mkdir()
    copy_experiment(small_ref, out_dir)
    monkeypatch.chdir(cwd)
    code, err = run_inproc("report", f"out_dir={out_dir}", "report.plots=false", "report.formats=[csv]")
    assert code == 0, err
    assert list(cwd.iterdir()) == []  # nothing written where the command was typed
    assert [p.name for p in (out_dir / "report").iterdir()]  # the table, under out_dir
