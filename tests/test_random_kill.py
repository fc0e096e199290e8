"""Slow: SIGKILL at random moments of every stage of every space, resume, and compare every
artefact with an uninterrupted run (CPU, same seed), bit for bit but for wall-clock fields."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests._imagefolder import write_image_folder
from tests._reliability import SMALL, clean_run, compare_experiments
from tests.conftest import run_cli

STAGES = ["warmup", "split", "search", "select"]
_IMAGENET = ["dataset=imagenet", "dataset.num_classes=3", "dataset.image_size=32", "dataset.workers=0",
             "train.batch_size=8", "retrain.batch_size=8"]
SPACES = {
    "nb201": SMALL,
    "darts": ["experiment=smoke", "space=darts", "dataset.limit=64", "train.batch_size=8",
              "train.max_steps_per_epoch=1", "criterion=gm", "splits=1", "name=e"],
    "mobilenet": ["experiment=smoke", "space=mobilenet", "algo=proxyless", "criterion=gm", "splits=2",
                  "branching=[2,3]", *_IMAGENET, "space.stages=[[8,2,2],[16,2,1]]", "space.stem_width=8",
                  "space.first_block_width=8", "space.feature_mix_width=32", "name=e"],
    "ofa_mbv3": ["experiment=smoke", "space=ofa_mbv3", "algo=ofa", "criterion=gm", "splits=2", "branching=[2,3]",
                 *_IMAGENET, "dataset.num_classes=4", "name=e"],
    # GM scoring in worker processes and successive halving as the selection rule
    "nb201-workers-halving": [*SMALL, "criterion.workers=2", "select.criterion=successive_halving"],
}


def _kill_until_done(stage: str, args: list[str], rng: random.Random, kills: int) -> int:
    """Run ``stage`` killed at random writes (``write:*:n`` / ``temp:*:n``) until it completes."""
    killed = 0
    for _ in range(kills):
        event = rng.choice(["write", "temp", "rotated"])
        res = run_cli(stage, *args, env={"GMNAS_TEST_KILL_AFTER": f"{event}:*:{rng.randint(1, 6)}"})
        if res.returncode == 0:
            break
        assert res.returncode == -9, res.stderr[-2000:]
        killed += 1
    res = run_cli(stage, *args)
    assert res.returncode == 0, res.stderr[-2000:]
    return killed


@pytest.mark.slow
@pytest.mark.parametrize("space", list(SPACES))
def test_random_kills_in_every_stage_resume_to_identical_artefacts(tmp_path: Path, space: str) -> None:
    args = list(SPACES[space])
    if "dataset=imagenet" in args:
        classes = int([a for a in args if a.startswith("dataset.num_classes=")][-1].split("=")[1])
        folder = write_image_folder(tmp_path / "data", classes=classes, train=16, val=2, size=36)
        args.append(f"dataset.root={folder}")
    ref = clean_run(tmp_path / "ref", args, STAGES)
    rng = random.Random(f"kill-{space}")
    out = [f"out_dir={tmp_path / 'k'}", *args]
    killed = sum(_kill_until_done(stage, out, rng, kills=4) for stage in STAGES)
    compare_experiments(ref, tmp_path / "k/e")
    assert killed > 0  # a stage that writes fewer files than a drawn count finishes unkilled
