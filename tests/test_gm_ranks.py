"""GM scoring across data-parallel ranks: each rank scores its shards of every minibatch, the
per-op rows are all-reduced before the distance, and the decision is made once and broadcast."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from gmnas_cli.criteria import CRITERIA, SplitContext
from gmnas_cli.criteria.gm.fast import fast_op_gradients
from gmnas_cli.criteria.gm.scoring import gm_minibatches
from gmnas_cli.experiment.tree import PartitionTree
from gmnas_cli.infra import distributed
from gmnas_cli.pipeline.runtime import Runtime
from gmnas_cli.pipeline.stage import build_trainer
from gmnas_cli.stages import warmup

from .conftest import make_cfg

ARGS = ["experiment=smoke", "criterion.batches=3", "criterion.workers=1", "name=e"]


def _root_context(cfg) -> SplitContext:
    rt = Runtime(cfg)
    tree = PartitionTree.load(rt.exp.tree_path)
    trainer = build_trainer(rt, tree[0].mask, "split/node0")
    trainer.load(rt.exp.node_dir(0) / "ckpt.pt")
    return SplitContext(trainer, rt.space, tree, tree[0], 2, 0, int(cfg.seed))


def _decision(cfg) -> dict:
    d = CRITERIA["gm"](cfg.criterion).decide(_root_context(cfg))
    return {"edge": d.edge, "groups": [list(g) for g in d.groups],
            "distance": {e: s["distance"] for e, s in d.scores.items()}}


def _rank(rank: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    cfg = make_cfg(out, *ARGS)
    distributed.setup("cpu", 0, {"train.batch_size": int(cfg.train.batch_size)})  # one shard per rank
    Path(out, f"rank{rank}.json").write_text(json.dumps(_decision(cfg)))
    distributed.shutdown()


@pytest.mark.slow
def test_two_gloo_ranks_give_the_one_process_distances_and_tree(tmp_path):
    cfg = make_cfg(tmp_path, *ARGS)
    warmup.main(cfg)
    bs = int(cfg.train.batch_size)
    try:
        distributed.setup("cpu", 2, {"train.batch_size": bs})  # one process, the same 2 shards
        one = _decision(cfg)
        ctx = _root_context(cfg)
        edge = ctx.candidate_edges()[0]
        _, batch = next(gm_minibatches(ctx, 1))
        sharded = fast_op_gradients(ctx, edge, ctx.ops_of(edge), batch, 0)
    finally:
        distributed.setup("cpu", 0, {})
    # the sharded rows are the mean of the rows of each half minibatch (each its own BN statistics)
    halves = [fast_op_gradients(ctx, edge, ctx.ops_of(edge), (batch[0][s], batch[1][s]), 0)
              for s in (slice(0, bs // 2), slice(bs // 2, bs))]
    torch.testing.assert_close(sharded, (halves[0] + halves[1]) / 2, rtol=1e-5, atol=1e-7)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(port, str(tmp_path)), nprocs=2)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0 == r1  # one decision, the same scores on both ranks
    assert (r0["edge"], r0["groups"]) == (one["edge"], one["groups"])  # the same tree
    for e, d in one["distance"].items():
        np.testing.assert_allclose(np.array(r0["distance"][e]), np.array(d), rtol=1e-6, atol=1e-7)
