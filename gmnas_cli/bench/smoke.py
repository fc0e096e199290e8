"""``bench.suite=smoke``: each stage of ``experiment=smoke`` timed per space and algorithm.

Every stage runs as its own ``gmnas <stage> experiment=smoke space=<s> algo=<a>`` process, as a
user types it (Python start-up and imports included), in a temporary output directory: wall
seconds and the CPU seconds of the process and its workers (``getrusage(RUSAGE_CHILDREN)``; on
an idle machine with ``threads: 1`` and one GM worker per CPU, wall time is about CPU time over
the workers). ``space=mobilenet`` reads a tiny ImageNet-style image folder written here (4
classes, 16 training and 2 validation images per class, about 40 px).
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from PIL import Image

from gmnas_cli.algorithms import ALGORITHMS
from gmnas_cli.bench.suite import Row, bench_out
from gmnas_cli.infra.errors import StageError
from gmnas_cli.pipeline.validate import compatible

SMOKE_SPACES = ("nb201", "nb201_4ops", "darts", "mobilenet", "ofa_mbv3")
SMOKE_STAGES = ("warmup", "split", "search", "select", "retrain")
FOLDER_CLASSES = 4


def write_folder(root: Path, classes: int = FOLDER_CLASSES, train: int = 16, val: int = 2, size: int = 36) -> Path:
    """A tiny ``train/<class>/*.png``, ``val/<class>/*.png`` folder in ImageNet's layout: class c's
    images are noise around a class colour, about ``size`` pixels a side (a little non-square)."""
    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("val", val)):
        for c in range(classes):
            d = root / split / f"n{c:02d}"
            d.mkdir(parents=True, exist_ok=True)
            base = np.array([(c * 97) % 256, (c * 53 + 80) % 256, (c * 31 + 160) % 256])
            for i in range(n):
                h, w = size + int(rng.integers(0, 8)), size + int(rng.integers(0, 12))
                img = np.clip(base + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"img{i:03d}.png")
    return root


def _space_algos(cfg: DictConfig) -> list[tuple[str, str]]:
    """(space option, algorithm) pairs to time: ``bench.smoke_spaces`` x ``bench.smoke_algos``
    (empty: every algorithm the space supports, ``pipeline/validate.py`` ``compatible``)."""
    spaces = [str(s) for s in cfg.bench.smoke_spaces] or list(SMOKE_SPACES)
    wanted = [str(a) for a in cfg.bench.smoke_algos]
    pairs = []
    for space in spaces:
        name = "nb201" if space == "nb201_4ops" else space
        algos = [a for a in ALGORITHMS.names() if compatible(name, a)]
        pairs += [(space, a) for a in algos if not wanted or a in wanted]
    return pairs


def _timed(args: list[str], log: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one ``gmnas`` process (its GM workers included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with log.open("a") as f:
        code = subprocess.run([sys.executable, "-m", "gmnas_cli", *args], stdout=f, stderr=subprocess.STDOUT,
                              check=False).returncode
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        raise StageError(f"bench smoke: `gmnas {' '.join(args)}` exited {code}; log: {log}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def smoke_rows(cfg: DictConfig) -> list[Row]:
    """One row per space, algorithm and stage: wall seconds, CPU seconds in the detail."""
    rows: list[Row] = []
    out = bench_out(cfg)
    keep = out.parent if out.suffix == ".csv" else out  # failed stages' logs go beside bench.csv
    with tempfile.TemporaryDirectory(prefix="gmnas-bench-smoke-") as tmp:
        folder = write_folder(Path(tmp) / "images")
        for space, algo in _space_algos(cfg):
            name = f"{space}-{algo}"
            args = ["experiment=smoke", f"space={space}", f"algo={algo}", f"out_dir={tmp}/out", f"name={name}"]
            if space == "mobilenet":
                args += ["dataset=imagenet", f"dataset.root={folder}", f"dataset.num_classes={FOLDER_CLASSES}"]
            log = Path(tmp) / f"{name}.log"
            for stage in SMOKE_STAGES:
                try:
                    wall, cpu = _timed([stage, *args], log)
                except StageError:
                    Path(keep).mkdir(parents=True, exist_ok=True)
                    (Path(keep) / log.name).write_text(log.read_text())
                    raise StageError(f"bench smoke: `gmnas {stage} {' '.join(args)}` failed; log in "
                                     f"{Path(keep) / log.name}") from None
                rows.append(Row("smoke_stage", f"{space}/{algo}", wall, "s", f"{stage}; {cpu:.1f} s CPU"))
    return rows
