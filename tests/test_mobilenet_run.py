"""Acceptance: ``gmnas run experiment=smoke space=mobilenet algo=proxyless criterion=gm
splits=2 branching=[2,3]`` on a tiny image-folder stand-in (tiny widths, 32x32)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests._imagefolder import write_image_folder
from tests._reliability import compare_experiments, run_forked, run_inproc

TINY = ["experiment=smoke", "space=mobilenet", "algo=proxyless", "criterion=gm", "splits=2", "branching=[2,3]",
        "dataset=imagenet", "dataset.num_classes=3", "dataset.image_size=32", "dataset.workers=0",
        "space.stages=[[8,2,2],[16,2,1]]", "space.stem_width=8", "space.first_block_width=8",
        "space.feature_mix_width=32", "train.batch_size=8", "retrain.batch_size=8", "name=e"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("imagenet"), classes=3, train=16, val=2, size=36)


def _run(out: Path, folder: Path, *extra: str, commands: tuple[str, ...] = ("run",)) -> Path:
    for command in commands:
        code, err = run_inproc(command, *TINY, f"dataset.root={folder}", f"out_dir={out}", *extra)
        assert code == 0, err
    return out / "e"


def test_smoke_run_gm_proxyless_six_leaves(tmp_path: Path, folder: Path) -> None:
    exp = _run(tmp_path / "a", folder)
    tree = json.loads((exp / "tree.json").read_text())
    leaves = [n for n in tree["nodes"] if "split" not in n]
    assert len(leaves) == 6
    root_mask = tree["nodes"][0]["mask"]
    no_zero = [e for e, ops in root_mask.items() if "zero" not in ops]
    assert no_zero == ["b1", "b3"]  # b1: stride 2; b3: 8 -> 16 channels
    for leaf in leaves:
        assert all("zero" not in leaf["mask"][e] for e in no_zero)
        result = json.loads((exp / "search" / str(leaf["id"]) / "result.json").read_text())
        assert all(op in leaf["mask"][e] for e, op in result["arch_ops"].items())
        assert result["mflops"] > 0 and result["params_m"] > 0
        config = json.loads((exp / "search" / str(leaf["id"]) / "net.config").read_text())
        assert [b["mobile_inverted_conv"]["name"] for b in config["blocks"]][0] == "MBInvertedConvLayer"
    split = json.loads((exp / "data_split.json").read_text())  # the held-out files are recorded
    assert (split["weights_images"], split["heldout_images"], len(split["heldout"])) == (24, 24, 24)
    retrain = json.loads((exp / "retrain/result.json").read_text())
    assert {"mflops", "params_m", "test_top5_error"} <= retrain.keys()
    assert json.loads((exp / "retrain/net.config").read_text())["name"] == "ProxylessNASNets"
    # the same seed gives the identical tree
    again = _run(tmp_path / "b", folder, commands=("warmup", "split"))
    assert (again / "tree.json").read_text() == (exp / "tree.json").read_text()
    code, err = run_inproc("report", *TINY, f"out_dir={tmp_path / 'a'}", "report.table=mobilenet",
                           f"report.experiments=[{exp}]", f"report.out={tmp_path / 'rep'}", "report.plots=false")
    assert code == 0, err
    assert "GM + ProxylessNAS" in (tmp_path / "rep" / "mobilenet.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("joint", [[], ["split_train_arch=true", "restart=false"]], ids=["plain", "joint"])
def test_sigkill_mid_split_resumes_to_identical_artefacts(tmp_path: Path, folder: Path, joint: list[str]) -> None:
    """Slow (about 35 s on 2 busy cores): two full split phases. ``joint``: the official schedule."""
    ref = _run(tmp_path / "ref", folder, *joint, commands=("warmup", "split", "search"))
    out = [*TINY, f"dataset.root={folder}", f"out_dir={tmp_path / 'k'}", *joint]
    assert run_inproc("warmup", *out)[0] == 0
    run_forked("split", *out, kill="write:gm_progress_1.json:1")  # inside the second split's GM scoring
    run_forked("split", *out, kill="write:ckpt.pt:2")  # a child's checkpoint during the joint interval
    assert run_inproc("split", *out)[0] == 0
    run_forked("search", *out, kill="write:ckpt.pt:3")
    assert run_inproc("search", *out)[0] == 0
    files = compare_experiments(ref, tmp_path / "k" / "e")
    assert {"tree.json", "nodes/1/gm_progress_1.json", "nodes/8/ckpt.pt", "search/5/result.json"} <= set(files)


@pytest.mark.slow
def test_streamed_run_with_workers_is_reproducible(tmp_path: Path, folder: Path) -> None:
    """Slow (two split phases through DataLoader worker processes): the same seed, the same tree."""
    stream = ["dataset.loader=stream", "dataset.workers=1", "dataset.valid_size=12"]
    a = _run(tmp_path / "a", folder, *stream, commands=("warmup", "split"))
    b = _run(tmp_path / "b", folder, *stream, commands=("warmup", "split"))
    assert (a / "tree.json").read_text() == (b / "tree.json").read_text()
    assert json.loads((a / "data_split.json").read_text())["heldout_images"] == 12
