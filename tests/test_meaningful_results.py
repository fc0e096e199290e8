"""No silent wrong answers: benchmark tables checked when loaded, strict JSON, no zero-step stages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gmnas_cli.benchmarks.nb201 import NB201Table
from gmnas_cli.infra.errors import StageError
from gmnas_cli.infra.io import read_json, write_json
from tests import _reliability
from tests._reliability import copy_experiment, error_lines, hash_files, run_inproc
from tests.conftest import DARTS_V2

A = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
B = "|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
COLUMNS = {"cifar10_valid": "cifar10_valid_x_valid", "params_m": "params_m"}


def _table(tmp_path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path = tmp_path / "t.csv"
    path.write_text("arch,cifar10_valid_x_valid,params_m\n" + "".join(f"{a},{v},{p}\n" for a, v, p in rows))
    return path


@pytest.mark.parametrize("cell", ["abc", "194", "-73.5", "1e9", "inf"])
def test_a_cell_outside_the_metric_is_refused_with_line_column_and_file(tmp_path, cell):
    path = _table(tmp_path, [(A, "94.1", "1.2"), (B, cell, "0.8")])
    with pytest.raises(StageError) as exc:
        NB201Table(path, "arch", COLUMNS)
    msg = str(exc.value)
    assert f"{path} line 3, column 'cifar10_valid_x_valid'" in msg and repr(str(float(cell)) if cell != 'abc' else cell) in msg and "[0, 100]" in msg


def test_a_negative_size_is_refused(tmp_path):
    with pytest.raises(StageError, match="line 2, column 'params_m'"):
        NB201Table(_table(tmp_path, [(A, "94.1", "-1")]), "arch", COLUMNS)


def test_a_duplicate_architecture_is_refused(tmp_path):
    path = _table(tmp_path, [(A, "94.1", "1.2"), (B, "90", "0.8"), (f" {A}", "12", "1.2")])
    with pytest.raises(StageError, match=r"line 4: architecture .* repeats line 2"):
        NB201Table(path, "arch", COLUMNS)


def test_an_empty_cell_is_no_figure_and_never_best(tmp_path):
    table = NB201Table(_table(tmp_path, [(A, "", "1.2"), (B, "60", "NA")]), "arch", COLUMNS)
    assert table.query(A) == {"cifar10_valid": None, "params_m": 1.2}
    assert table.query(B) == {"cifar10_valid": 60.0, "params_m": None}
    assert table.best("cifar10_valid") == (B, 60.0)
    assert table.ranked("cifar10_valid") == [(B, 60.0)]


def test_max_never_selects_a_leaf_without_a_figure(tmp_path, small_ref):
    exp = copy_experiment(small_ref, tmp_path)
    archs = {json.loads(p.read_text())["leaf"]: json.loads(p.read_text())["arch"]
             for p in sorted(exp.glob("search/*/result.json"))}
    leaves = sorted(archs)
    # the first leaf has no figure; the others are worse than any real figure would make it win
    rows = [(archs[leaves[0]], "", "1")] + [(archs[leaf], str(50 + i), "1") for i, leaf in enumerate(leaves[1:])]
    rows = list({a: (a, v, p) for a, v, p in reversed(rows)}.values())  # leaves may share an architecture
    table = tmp_path / "v11.csv"
    table.write_text("arch,cifar10_valid_x_valid,cifar10_test,cifar10_valid_ori_test,params_m\n"
                     + "".join(f"{a},{v},{v},{v},{p}\n" for a, v, p in rows))
    code, err = run_inproc("select", *_reliability.SMALL, f"out_dir={tmp_path}", "force=true",
                           "benchmark=nb201_v11", f"benchmark.path={table}", "select.criterion=max")
    assert code == 0, err
    sel = json.loads((exp / "selection.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert sel["benchmark"]["cifar10_valid"] is not None
    assert sel["arch"] != archs[leaves[0]] or len(set(archs.values())) == 1


def test_json_is_strict_both_ways(tmp_path):
    with pytest.raises(StageError, match=r"non-finite number at candidates.1.val_loss"):
        write_json(tmp_path / "x.json", {"candidates": [{"val_loss": 1.0}, {"val_loss": float("nan")}]})
    assert not (tmp_path / "x.json").exists()
    (tmp_path / "y.json").write_text('{"val_loss": NaN}')
    with pytest.raises(StageError, match="y.json: not valid JSON .*NaN"):
        read_json(tmp_path / "y.json")


def test_epochs_of_zero_steps_are_refused_before_anything_is_written(tmp_path):
    code, err = run_inproc("warmup", "experiment=smoke", "dataset.limit=40", f"out_dir={tmp_path}")
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1, err
    assert "weights half holds 20 images" in lines[0] and "train.batch_size=32" in lines[0]
    assert "zero optimisation steps" in lines[0]
    assert hash_files(tmp_path) == {}
    for stage in ("split", "search"):  # brought predecessors are refused before they write too
        code, err = run_inproc(stage, "experiment=smoke", "dataset.limit=40", f"out_dir={tmp_path}")
        assert code == 2 and "zero optimisation steps" in err, err
    assert hash_files(tmp_path) == {}


@pytest.mark.parametrize("space, arch, token", [
    ("nb201", "|nor_conv_3x3~²|+|none~0|none~1|+|none~0|none~1|none~2|", "'nor_conv_3x3~²'"),
    ("darts", DARTS_V2.replace("normal_concat=range(2, 6)", "normal_concat=5"), "normal_concat must be [2, 3, 4, 5], got 5"),
])
def test_malformed_architectures_name_the_offending_token(space, arch, token):
    code, err = run_inproc("arch", f"space={space}", f"arch={arch}")
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1 and token in lines[0], err
