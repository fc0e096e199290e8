"""Scale-out: submitit leaf sweeps with requeue, torchrun data parallelism, multi-node safety."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from gmnas_cli.experiment.directory import Experiment
from gmnas_cli.infra import distributed
from gmnas_cli.infra.io import host_tag, remove_stale_temps
from gmnas_cli.pipeline.runtime import Runtime
from gmnas_cli.pipeline.stage import cleanup_root
from tests._reliability import (
    SMALL,
    compare_experiments,
    copy_experiment,
    error_lines,
    hash_files,
    run_inproc,
    temp_files,
)
from tests.conftest import REPO, make_cfg, run_cli

TWO_LEAVES = ["experiment=smoke", "splits=1", "name=e"]  # warmup + one split: 2 leaves, seconds a stage


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- multi-node safety (docs/cluster.md) ---------------------------------------------
def test_stale_temp_cleanup_spares_other_hosts_and_sibling_leaves(tmp_path, small_ref):
    exp = copy_experiment(small_ref, tmp_path / "out")
    dead = _dead_pid()
    mine = exp / "search/3" / f".ckpt.pt.{host_tag()}.{dead}.abc123.tmp"  # leaf 0 is node 3
    other_host = exp / "search/3" / f".ckpt.pt.node-b.{dead}.abc123.tmp"  # a live writer elsewhere
    sibling = exp / "search/4" / f".ckpt.pt.{host_tag()}.{dead}.abc123.tmp"  # leaf 1's folder
    for p in (mine, other_host, sibling):
        p.write_bytes(b"x")
    rt = Runtime(make_cfg(tmp_path / "out", *SMALL, "leaf=0"))
    root = cleanup_root(rt, "search")
    assert root == exp / "search/3"  # a leaf job cleans only its own folder
    assert remove_stale_temps(root) == [mine]
    assert other_host.exists() and sibling.exists()
    assert cleanup_root(Runtime(make_cfg(tmp_path / "out", *SMALL)), "search") == exp


@pytest.mark.parametrize("flag", ["force=true", "resume=never"])
def test_discarding_inside_a_leaf_sweep_is_refused(tmp_path, small_ref, flag):
    out_dir = tmp_path / "out"
    exp = copy_experiment(small_ref, out_dir)
    before = hash_files(exp)
    code, err = run_inproc("search", "-m", "leaf=0,1", flag, *SMALL, f"out_dir={out_dir}")
    assert code == 2, err
    lines = error_lines(err)
    assert len(lines) == 1 and "would delete the other leaves' work" in lines[0] and flag in lines[0], lines
    assert hash_files(exp) == before  # nothing deleted, nothing written


def test_leaf_jobs_share_one_search_snapshot_and_identity(tmp_path):
    snaps = []
    for leaf in ("0", "1", "null"):
        cfg = make_cfg(tmp_path / "out", *SMALL, f"leaf={leaf}")
        exp = Experiment(cfg)
        exp.check_identity("search")  # every leaf job agrees with the snapshot of the others
        exp.snapshot_config("search")
        snaps.append(((exp.root / "config/search.yaml").read_text(), (exp.root / "config/search.json").read_text()))
    assert snaps[0] == snaps[1] == snaps[2]  # last writer wins, but all write the same
    assert "leaf: null" in snaps[0][0]


def test_batch_shards_must_cut_the_global_batch_evenly(tmp_path):
    code, err = run_inproc("warmup", "experiment=smoke", "batch_shards=5", f"out_dir={tmp_path / 'out'}")
    assert code == 2
    lines = error_lines(err)
    assert len(lines) == 1 and "train.batch_size=32" in lines[0] and "batch_shards=5" in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_shards_in_one_process_average_per_shard_gradients_and_statistics():
    """batch_shards=2 in one process = the mean of what two ranks compute on their halves."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.LazyLinear(2))
    batch = (torch.randn(8, 1, 6, 6), torch.randint(0, 2, (8,)))
    net(batch[0])  # materialise the lazy layer

    def loss_of(b):
        return nn.functional.cross_entropy(net(b[0]), b[1])

    params = list(net.parameters())
    start = {k: v.clone() for k, v in net.state_dict().items()}
    per_half, stats = [], []
    for half in ((batch[0][:4], batch[1][:4]), (batch[0][4:], batch[1][4:])):
        net.load_state_dict(start)
        per_half.append(torch.autograd.grad(loss_of(half), params))
        stats.append(net[1].running_mean.clone())
    net.load_state_dict(start)
    try:
        distributed.setup("cpu", 2, {"train.batch_size": 8})
        grads, loss = distributed.shard_grads(loss_of, batch, params, net)
    finally:
        distributed.setup("cpu", 0, {})
    for g, a, b in zip(grads, *per_half):
        torch.testing.assert_close(g, (a + b) / 2, rtol=0, atol=1e-7)
    torch.testing.assert_close(net[1].running_mean, (stats[0] + stats[1]) / 2, rtol=0, atol=1e-7)
    assert int(net[1].num_batches_tracked) == int(start["1.num_batches_tracked"]) + 1  # one step, as on each rank


# -- submitit: a leaf sweep whose first job is preempted once -------------------------------------
@pytest.fixture(scope="module")
def two_leaves(tmp_path_factory) -> Path:
    """warmup + split of TWO_LEAVES, and the sequential search of both leaves (the reference)."""
    out = tmp_path_factory.mktemp("two_leaves")
    for stage in ("warmup", "split"):
        code, err = run_inproc(stage, *TWO_LEAVES, f"out_dir={out / 'split'}")
        assert code == 0, err
    shutil.copytree(out / "split", out / "seq")
    code, err = run_inproc("search", *TWO_LEAVES, f"out_dir={out / 'seq'}")
    assert code == 0, err
    return out


@pytest.mark.slow
def test_submitit_leaf_sweep_with_a_preemption_equals_the_sequential_search(tmp_path, two_leaves):
    """`gmnas search -m leaf=0,1 hydra/launcher=submitit_local` (about 60 s here, mostly waiting): the
    first job to write a checkpoint gets SIGUSR2 once, submitit requeues it (exit 144, new process),
    it resumes from that checkpoint; the results equal the sequential search, one completion record,
    nothing in the working directory."""
    out_dir = tmp_path / "out"
    exp = copy_experiment(two_leaves / "split" / "e", out_dir)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    marker = tmp_path / "preempted"
    res = run_cli("search", "-m", "leaf=0,1", "hydra/launcher=submitit_local", *TWO_LEAVES, f"out_dir={out_dir}",
                  cwd=cwd, env={"GMNAS_TEST_PREEMPT_AFTER": f"write:ckpt.pt:{marker}"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert not any(cwd.iterdir())  # neither Hydra nor submitit wrote into the working directory
    assert marker.exists()  # one job got the preemption signal
    logs = {p: p.read_text() for p in (out_dir / "multirun/.submitit").glob("*/*_log.out")}
    requeued = [p for p, text in logs.items() if "Requeued job" in text]
    assert len(requeued) == 1, logs
    assert logs[requeued[0]].count("Starting with JobEnvironment") == 2  # a second process resumed
    status = json.loads((exp / "status/search.json").read_text())
    assert status["stage"] == "search" and len(status["leaves"]) == 2
    assert sorted(p.name for p in (exp / "status").iterdir()) == ["search.json", "split.json", "warmup.json"]
    assert not temp_files(out_dir)
    compare_experiments(two_leaves / "seq" / "e" / "search", exp / "search")


# -- torchrun: 2 ranks (gloo, CPU) equal one process with the same 2 shards -----------------------
def _torchrun(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "gmnas_cli", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
@pytest.mark.parametrize("algo,kill", [(["algo.order=2"], None), (["algo=gdas"], "write:ckpt.pt:4")],
                         ids=["darts2", "gdas-killed"])
def test_torchrun_two_ranks_equal_one_process_with_two_shards(tmp_path, algo, kill):
    """`gmnas run` (warmup, GM split, DARTS-2 or GDAS search, select, retrain under DDP) on 2 gloo
    ranks equals, bit for bit, one process with batch_shards=2: weights, alpha, optimizer states,
    tree, curves, results (about 50 s + 35 s here). Both ranks hold the same tensors at every
    checkpoint (``distributed.check_ranks_agree`` fails the run otherwise). ``kill``: rank 0 (the
    writer) is SIGKILLed at that event first, torchrun stops rank 1, and the rerun resumes on both
    ranks from the same checkpoint."""
    args = ["experiment=smoke", "splits=1", *algo, "search_epochs=1", "dataset.limit=200", "name=e",
            "report.plots=false"]
    if kill:
        res = _torchrun("run", *args, f"out_dir={tmp_path / 'ddp'}", env={"GMNAS_TEST_KILL_AFTER": kill})
        assert res.returncode != 0 and not (tmp_path / "ddp/e/status/search.json").exists(), res.stderr[-2000:]
    res = _torchrun("run", *args, f"out_dir={tmp_path / 'ddp'}")
    assert res.returncode == 0, res.stderr[-4000:]
    code, err = run_inproc("run", *args, "batch_shards=2", f"out_dir={tmp_path / 'one'}")
    assert code == 0, err
    files = compare_experiments(tmp_path / "one" / "e", tmp_path / "ddp" / "e")
    assert {"nodes/0/ckpt.pt", "tree.json", "search/1/ckpt.pt", "retrain/ckpt.pt", "retrain/curve.csv"} <= set(files)
    snap = (tmp_path / "ddp" / "e" / "config" / "search.yaml").read_text()
    assert "batch_shards: 2" in snap  # 0 became the world size, part of the experiment's identity


def _diverging_ranks(rank: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    distributed.setup("cpu", 0, {"train.batch_size": 4})
    same = {"w": torch.ones(3)}
    distributed.check_ranks_agree(same, "same")
    means = distributed.allreduce_mean([torch.full((2,), float(rank))])
    try:
        distributed.check_ranks_agree({"w": torch.full((3,), float(rank))}, "diverged")
        verdict = "no error"
    except Exception as err:  # noqa: BLE001
        verdict = str(err)
    Path(out, f"rank{rank}.json").write_text(json.dumps({"mean": means[0].tolist(), "verdict": verdict,
                                                         "shards": distributed.local_labels(
                                                             (torch.arange(4), torch.arange(4))).tolist()}))
    distributed.shutdown()


@pytest.mark.slow
def test_two_ranks_reduce_shard_and_detect_divergence(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_diverging_ranks, args=(port, str(tmp_path)), nprocs=2)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["mean"] == r1["mean"] == [0.5, 0.5]
    assert r0["shards"] == [0, 1] and r1["shards"] == [2, 3]  # each rank its slice of the same batch
    assert "ranks [1] hold other tensors than rank 0" in r0["verdict"] and r0["verdict"] == r1["verdict"]


@pytest.mark.parametrize("preset,tasks", [("slurm", 1), ("slurm_ddp", 8)])
def test_slurm_presets_requeue_after_timeouts(preset, tasks):
    from hydra import compose, initialize_config_dir

    from gmnas_cli.cli.app import conf_dir
    from gmnas_cli.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        cfg = compose("config", overrides=[f"hydra/launcher={preset}"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.max_num_timeout >= 3 and launcher.timeout_min > 0 and launcher.tasks_per_node == tasks
    assert launcher.submitit_folder == f"{cfg.out_dir}/multirun/.submitit/%j"  # logs under out_dir/multirun


@pytest.mark.slow
def test_submitit_tasks_are_ranks(tmp_path):
    """`hydra.launcher.tasks_per_node=2` (submitit_local): each task runs the stage as one rank of a
    gloo group (submitit's environment, exported by gmnas), and the warmup equals one process with
    batch_shards=2 (about 50 s here)."""
    args = ["experiment=smoke", "name=e"]
    res = run_cli("warmup", "-m", "seed=0", "hydra/launcher=submitit_local", "hydra.launcher.tasks_per_node=2", *args,
                  f"out_dir={tmp_path / 'tasks'}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    code, err = run_inproc("warmup", *args, "batch_shards=2", f"out_dir={tmp_path / 'one'}")
    assert code == 0, err
    compare_experiments(tmp_path / "one" / "e", tmp_path / "tasks" / "e")
    logs = sorted((tmp_path / "tasks/multirun/.submitit").glob("*/*_log.err"))
    assert len(logs) == 2 and "warmup: complete" in logs[0].read_text() and "[gmnas]" not in logs[1].read_text()
