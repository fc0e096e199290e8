"""`gmnas status` and `gmnas tree`: the stage in progress (leaf, epoch) from the checkpoints, running
versus interrupted from the stage's lock, then the selected architecture and its result."""

from __future__ import annotations

import json
import shutil

from gmnas_cli.infra.locks import shared
from tests._reliability import SMALL, copy_experiment, run_forked, run_inproc


def status_json(capsys, tmp_path, *extra: str) -> dict:
    capsys.readouterr()
    code, err = run_inproc("status", f"out_dir={tmp_path}", *extra, "--json")
    assert code == 0, err
    return json.loads(capsys.readouterr().out)


def test_status_during_and_after_a_search(tmp_path, small_ref, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # rich's console width: no folding in the checks below
    exp = copy_experiment(small_ref, tmp_path)
    shutil.rmtree(exp / "search")
    for rel in ("status/search.json", "status/select.json", "selection.json", "config/search.json",
                "config/search.yaml"):
        (exp / rel).unlink()
    # the first leaf's first epoch is checkpointed, then the job dies
    run_forked("search", *SMALL, f"out_dir={tmp_path}", kill="write:ckpt.pt:1")
    st = status_json(capsys, tmp_path, "name=e")
    assert st["stages"]["warmup"]["state"] == st["stages"]["split"]["state"] == "done"
    assert st["stages"]["search"] == {"state": "interrupted", "seconds": None,
                                      "detail": "0 of 4 leaves done; leaf 1 of 4 (node 3) epoch 1 of 2"}
    assert st["stages"]["select"]["state"] == "not started"
    with shared(exp, "search"):  # as a live search job holds it
        st = status_json(capsys, tmp_path, "name=e")
        assert st["stages"]["search"]["state"] == "running"
        assert "leaf 1 of 4 (node 3) epoch 1 of 2" in st["stages"]["search"]["detail"]
        capsys.readouterr()
        code, err = run_inproc("status", f"out_dir={tmp_path}")  # the table of all experiments
        out = capsys.readouterr().out
        assert code == 0, err
        assert "running" in out and "epoch 1 of 2" in out

    done = {s: json.loads((exp / "status" / f"{s}.json").read_text())["finished"] for s in ("warmup", "split")}
    code, err = run_inproc("select", *SMALL, f"out_dir={tmp_path}")  # brings the rest of the search
    assert code == 0, err
    assert "running `gmnas search` first" in err  # only the missing predecessor, resumed at leaf 3 epoch 2
    assert "gmnas warmup` first" not in err and "gmnas split` first" not in err and "GM node" not in err
    assert "search/leaf3 epoch 1/" not in err and "search/leaf3 epoch 2/" in err
    assert {s: json.loads((exp / "status" / f"{s}.json").read_text())["finished"] for s in done} == done
    rows = status_json(capsys, tmp_path)
    assert [r["name"] for r in rows] == ["e"]
    sel = json.loads((exp / "selection.json").read_text())
    assert rows[0]["selected_arch"] == sel["arch"] and rows[0]["leaves"] == 4
    assert all(rows[0]["stages"][s]["state"] == "done" for s in ("warmup", "split", "search", "select"))
    assert rows[0]["stages"]["retrain"]["state"] == "not started"

    capsys.readouterr()
    code, err = run_inproc("tree", f"out_dir={tmp_path}", "name=e")
    out = capsys.readouterr().out
    assert code == 0, err
    tree = json.loads((exp / "tree.json").read_text())
    root_split = tree["nodes"][0]["split"]
    assert f"split {root_split['edge']} into" in out and "cut cost" in out
    assert "* selected" in out
    for leaf in (3, 4, 5, 6):
        arch = json.loads((exp / "search" / str(leaf) / "result.json").read_text())["arch"]
        assert arch in out


def test_status_of_a_missing_experiment_is_one_line(tmp_path):
    code, err = run_inproc("status", f"out_dir={tmp_path}", "name=nope")
    assert code == 2 and "is not an experiment directory" in err
    code, err = run_inproc("tree", f"out_dir={tmp_path}", "name=nope")
    assert code == 2 and "tree.json is missing" in err
