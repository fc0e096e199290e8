"""Bad input of space=mobilenet / algo=proxyless / dataset=imagenet: one error line, exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._imagefolder import write_image_folder
from tests._reliability import error_lines, hash_files, run_inproc, temp_files
from tests.test_mobilenet_run import TINY


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("imagenet"), classes=3, train=4, val=1, size=20)


def fails(out: Path, *overrides: str, command: str = "warmup", base: list[str] = TINY) -> str:
    out.mkdir(parents=True, exist_ok=True)
    before = hash_files(out)
    code, err = run_inproc(command, *base, f"out_dir={out}", *overrides)
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert code == 2, (code, lines[0])
    assert hash_files(out) == before and not temp_files(out)
    return lines[0].removeprefix(f"gmnas {command}: error: ")


@pytest.mark.parametrize("overrides, message", [
    (["space.ops=[3x3_MBConv3,9x9_MBConv]"], "unknown MobileNet op '9x9_MBConv'"),
    (["space.ops=[3x3_MBConv3,3x3_Conv]"], "unknown MobileNet op '3x3_Conv'"),
    (["space.stages=[[8,1,3]]"], "space.stages[0]=[8, 1, 3]: expected [width >= 1, blocks >= 1, stride 1 or 2]"),
    (["space.width_mult=0"], "space.width_mult=0"),
    (["algo.target=latency", "algo.latency_table=/no/such/lut.yaml"], "algo.latency_table='/no/such/lut.yaml' does not exist"),
    (["algo.target=gpu"], "algo.target='gpu'"),
    (["dataset.valid_size=-1"], "dataset.valid_size=-1"),
])
def test_bad_settings(tmp_path: Path, folder: Path, overrides: list[str], message: str) -> None:
    assert message in fails(tmp_path, f"dataset.root={folder}", *overrides)


def test_proxyless_needs_the_mobilenet_space(tmp_path: Path) -> None:
    assert "algo=proxyless cannot search space=nb201" in fails(tmp_path, "experiment=smoke", "algo=proxyless", base=[])


@pytest.mark.parametrize("override, message", [
    ("dataset.valid_size=100", "dataset.valid_size=100 has no effect on dataset 'digits'"),
    ("algo.target=flops", "algo.target='flops' has no effect on algo 'darts'"),
    ("train.warmup_lr=0.05", "train.warmup_lr=0.05 has no effect without split_train_arch=true"),
    ("retrain.dropout=0.1", "retrain.dropout=0.1 has no effect on space 'nb201'"),
])
def test_keys_refused_where_nothing_reads_them(tmp_path: Path, override: str, message: str) -> None:
    assert message in fails(tmp_path, "experiment=smoke", override, base=[])


def test_missing_train_folder(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "val" / "n00").mkdir(parents=True)
    msg = fails(tmp_path / "out", f"dataset.root={root}")
    assert f"{root / 'train'} is missing" in msg


def test_mobilenet_keys_refused_on_other_spaces(tmp_path: Path) -> None:
    msg = fails(tmp_path, "experiment=smoke", "space=nb201", "space.stem_width=16", base=[])
    assert "space.stem_width=16 has no effect on space 'nb201'" in msg


def test_latency_table_without_the_space_keys(tmp_path: Path, folder: Path) -> None:
    lut = tmp_path / "lut.yaml"
    lut.write_text("Conv-input:224x224x3-output:112x112x32: {mean: 1.0}\n")
    msg = fails(tmp_path / "out", f"dataset.root={folder}", "algo.target=latency", f"algo.latency_table={lut}")
    assert "has no entry 'Conv-input:32x32x3-output:16x16x8'" in msg


@pytest.mark.parametrize("arch, message", [
    ("zero,3x3_MBConv3", "token 1 'zero': zero is unavailable on block b1 (stride 2"),
    ("3x3_MBConv3,3x3_MBConv9x", "token 2 '3x3_MBConv9x' (block b2) is not an op of this space"),
])
def test_gmnas_arch_names_the_bad_token(tmp_path: Path, arch: str, message: str) -> None:
    assert message in fails(tmp_path, "space=mobilenet", "dataset=imagenet", "dataset.num_classes=1000",
                            f"arch='{arch}'", command="arch", base=[])
