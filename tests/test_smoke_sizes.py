"""experiment=smoke has tiny sizes for every space (conf/experiment_space/smoke_<space>.yaml), and
``gmnas bench bench.suite=smoke`` times each of its stages per space and algorithm."""

from __future__ import annotations

from pathlib import Path

from gmnas_cli.bench.smoke import SMOKE_SPACES, _space_algos, write_folder
from gmnas_cli.pipeline.validate import validate

from .conftest import make_cfg


def test_smoke_mobilenet_is_tiny(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "imgs")
    cfg = make_cfg(tmp_path, "experiment=smoke", "space=mobilenet", "algo=proxyless", "dataset=imagenet",
                   f"dataset.root={root}", "dataset.num_classes=4")
    validate(cfg, "run")
    assert [list(s) for s in cfg.space.stages] == [[8, 2, 2], [16, 2, 1]]
    assert (cfg.space.stem_width, cfg.space.feature_mix_width, cfg.dataset.image_size) == (8, 32, 32)
    assert sorted(p.name for p in (root / "train").iterdir()) == ["n00", "n01", "n02", "n03"]


def test_smoke_darts_is_smaller_and_nb201_keeps_its_values(tmp_path: Path) -> None:
    darts = make_cfg(tmp_path, "experiment=smoke", "space=darts")
    assert (darts.criterion.batches, darts.train.batch_size, darts.space.nodes) == (2, 16, 3)
    nb201 = make_cfg(tmp_path, "experiment=smoke")
    assert (nb201.criterion.batches, nb201.space.C, nb201.train.batch_size) == (2, 4, 32)


def test_bench_smoke_covers_every_space_and_its_algorithms(tmp_path: Path) -> None:
    pairs = _space_algos(make_cfg(tmp_path, "bench.suite=smoke"))
    assert {s for s, _ in pairs} == set(SMOKE_SPACES)
    assert ("mobilenet", "proxyless") in pairs and ("ofa_mbv3", "ofa") in pairs
    assert ("darts", "snas") in pairs and ("darts", "proxyless") not in pairs
    only = _space_algos(make_cfg(tmp_path, "bench.suite=smoke", "bench.smoke_spaces=[darts]",
                                 "bench.smoke_algos=[snas]"))
    assert only == [("darts", "snas")]
