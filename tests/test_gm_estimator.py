"""GM distances against an independent per-minibatch computation (official split_supernet,
App. B.2), both estimators and every similarity; the confidence early stop run to the end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gmnas_cli.criteria import CRITERIA, SplitContext
from gmnas_cli.criteria.cut import candidate_partitions, partition_costs, within_group_cut
from gmnas_cli.criteria.gm.scoring import gm_distance, gm_minibatches
from gmnas_cli.criteria.gm.stop import (
    _wins,
    gm_scores_early_stop,
    look_schedule,
    margin_stats,
    simulate_pair,
    stop_threshold,
)
from gmnas_cli.experiment.tree import PartitionTree
from gmnas_cli.pipeline.runtime import Runtime
from gmnas_cli.pipeline.stage import build_trainer
from gmnas_cli.stages import warmup

SMOKE = ("experiment=smoke", "space=nb201", "algo=darts", "criterion=gm", "train.max_steps_per_epoch=4")


def root_context(cfg) -> SplitContext:
    warmup.main(cfg)
    rt = Runtime(cfg)
    tree = PartitionTree.load(rt.exp.tree_path)
    trainer = build_trainer(rt, tree[0].mask, "split/node0")
    trainer.load(rt.exp.node_dir(0) / "ckpt.pt")
    return SplitContext(trainer, rt.space, tree, tree[0], 2, 0, int(cfg.seed))


def independent_grads(ctx: SplitContext, edge: str, batches: int,
                      softmax: bool = False) -> list[list[list[torch.Tensor]]]:
    """Per minibatch, per op: the shared weights' .grad after a plain backward (DARTS weighting;
    the scored op weighted 1, or with ``softmax`` its softmax weight as the official DARTS space)."""
    net, algo, space = ctx.trainer.net, ctx.trainer.algo, ctx.space
    shared = [p for p in space.shared_parameters(net, edge) if p.requires_grad]
    e, out = space.edges.index(edge), []
    state = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    for _, (x, y) in gm_minibatches(ctx, batches):
        per_op = []
        for op in ctx.ops_of(edge):
            w = algo.probabilities().detach().clone()
            k = space.ops.index(op)
            scored = float(w[e, k]) if softmax else 1.0
            w[e] = 0.0
            w[e, k] = scored
            active = [list(a) for a in net.enabled]
            active[e] = [space.ops.index(op)]
            net.zero_grad(set_to_none=True)
            F.cross_entropy(net(x, w, active), y).backward()
            per_op.append([p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in shared])
        out.append(per_op)
    net.load_state_dict(state)
    net.zero_grad(set_to_none=True)
    return out


def reference_distance(g_i: list[torch.Tensor], g_j: list[torch.Tensor], kind: str) -> float:
    a = torch.cat([g.reshape(-1) for g in g_i]).double()
    b = torch.cat([g.reshape(-1) for g in g_j]).double()
    if kind == "cosine":
        return 1.0 - float(F.cosine_similarity(a, b, dim=0, eps=1e-12))
    if kind == "l2":
        return float(((a - b) ** 2).sum())
    cos = [F.cosine_similarity(x.reshape(x.shape[0], -1).double(), y.reshape(y.shape[0], -1).double(), dim=1,
                               eps=1e-12) for x, y in zip(g_i, g_j) if x.dim() > 1]
    return 1.0 - float(torch.cat(cos).mean())


@pytest.mark.parametrize("kind", ["cosine", "per_filter_cosine", "l2"])
def test_gm_distance_equals_independent_per_minibatch_mean(cfg_factory, kind):
    B = 3
    cfg = cfg_factory(*SMOKE, f"criterion.similarity={kind}", f"criterion.batches={B}", "name=est")
    ctx = root_context(cfg)
    edge = ctx.candidate_edges()[2]
    ops = ctx.ops_of(edge)
    grads = independent_grads(ctx, edge, B)
    n = len(ops)
    ref = np.zeros((n, n))
    for per_op in grads:  # the distance of every minibatch, then the mean (official)
        ref += np.array([[reference_distance(per_op[i], per_op[j], kind) for j in range(n)] for i in range(n)])
    ref /= B
    np.fill_diagonal(ref, 0.0)
    ours = gm_distance(ctx, edge, ops, B, cfg.criterion)
    assert np.allclose(ours, ref, rtol=1e-4, atol=1e-6 * max(1.0, np.abs(ref).max()))

    # average=gradient: the distance of the minibatch-mean gradients, which is another number.
    mean = [[sum(grads[b][i][k] for b in range(B)) / B for k in range(len(grads[0][i]))] for i in range(n)]
    ref_g = np.array([[reference_distance(mean[i], mean[j], kind) if i != j else 0.0 for j in range(n)]
                      for i in range(n)])
    cfg_g = cfg_factory(*SMOKE, f"criterion.similarity={kind}", f"criterion.batches={B}", "name=est",
                        "criterion.average=gradient")
    ours_g = gm_distance(ctx, edge, ops, B, cfg_g.criterion)
    assert np.allclose(ours_g, ref_g, rtol=1e-4, atol=1e-6 * max(1.0, np.abs(ref_g).max()))
    assert not np.allclose(ours_g, ours)


def test_early_stop_run_to_the_end_returns_the_full_decision(cfg_factory):
    """With a confidence no minibatch count can reach, the joint scores at criterion.batches are
    exactly the edge-by-edge (full) scores, and so is the decision."""
    B = 3
    cfg = cfg_factory(*SMOKE, f"criterion.batches={B}", "criterion.early_stop=true", "criterion.confidence=1e9",
                      "criterion.early_stop_min_batches=2", "name=es")
    ctx = root_context(cfg)
    early = CRITERIA["gm"](cfg.criterion).decide(ctx)
    full_cfg = cfg_factory(*SMOKE, f"criterion.batches={B}", "name=es")
    crit = CRITERIA["gm"](full_cfg.criterion)
    edges = ctx.candidate_edges()
    full = {e: crit.score_edge(ctx, e) for e in edges}
    for e in edges:
        joint = dict(early.scores[e])
        assert joint["batches"] == B
        joint.pop("margin")
        joint.pop("margin_se")
        assert joint == full[e]
    best = min(edges, key=lambda e: (full[e]["cut_cost"], edges.index(e)))
    assert (early.edge, early.groups) == (best, full[best]["groups"])


@pytest.mark.parametrize("cut", ["balanced", "within"])
def test_early_stop_stops_when_the_leader_wins_clearly(cfg_factory, cut):
    cfg = cfg_factory(*SMOKE, "criterion.batches=40", "criterion.early_stop=true", "criterion.confidence=0.01",
                      "criterion.early_stop_min_batches=2", f"criterion.cut={cut}", "name=fast")
    ctx = root_context(cfg)
    scores = gm_scores_early_stop(ctx, ctx.candidate_edges(), cfg.criterion)
    used = {s["batches"] for s in scores.values()}
    assert len(used) == 1 and used.pop() < 40
    lead = min(scores, key=lambda e: scores[e]["cut_cost"])
    assert all(s["margin"] is None or s["margin"] > 0 for s in scores.values())
    assert scores[lead]["margin_se"] is None or scores[lead]["margin_se"] > 0.01


def test_partition_costs_match_the_cut_functions():
    rng = np.random.default_rng(0)
    d = rng.uniform(0, 2, (7, 7))
    d = (d + d.T) / 2
    np.fill_diagonal(d, 0)
    groups, cost = within_group_cut(d, 2)
    costs = partition_costs(d, "within", 2)
    parts = candidate_partitions("within", 7, 2)
    assert {len(g) for p in parts for g in p} == {2, 3, 4, 5}  # official: 2|5 or 3|4
    assert np.isclose(costs.min(), cost) and [list(g) for g in parts[int(costs.argmin())]] == groups
    stack = np.stack([d, 2 * d])
    assert np.allclose(partition_costs(stack, "within", 2), np.stack([costs, 2 * costs]))


def test_scored_weight_softmax_keeps_the_ops_relaxed_weight(cfg_factory):
    """criterion.scored_weight=softmax (official DARTS space) weights the scored op by its softmax
    weight; one_hot (official NB201) by 1."""
    from gmnas_cli.criteria.gm.scoring import op_gradients

    cfg = cfg_factory(*SMOKE, "criterion.batches=1", "criterion.scored_weight=softmax", "name=sw")
    ctx = root_context(cfg)
    with torch.no_grad():
        ctx.trainer.algo.alpha.normal_(0, 1.0)  # distinct softmax weights per op
    edge = ctx.candidate_edges()[0]
    ops = ctx.ops_of(edge)
    ref = independent_grads(ctx, edge, 1, softmax=True)[0]
    one = independent_grads(ctx, edge, 1, softmax=False)[0]
    (_, batch), = list(gm_minibatches(ctx, 1))
    rows = op_gradients(ctx, edge, ops, batch, 0)
    differs = []
    for i in range(len(ops)):
        flat = torch.cat([g.reshape(-1) for g in ref[i]])
        assert torch.allclose(rows[i], flat, rtol=1e-4, atol=1e-7)
        differs.append(not torch.allclose(rows[i], torch.cat([g.reshape(-1) for g in one[i]]), rtol=1e-3))
    assert any(differs)  # (`none` outputs zeros: its weight cannot matter)


@pytest.mark.parametrize("overrides, needle", [
    (("criterion.early_stop=true", "criterion.average=gradient"), "criterion.average=distance"),
    (("criterion.early_stop=true", "criterion.cut=ncut"), "criterion.cut=balanced or within"),
    (("criterion.cut=within", "branching=3"), "criterion.cut=within"),
])
def test_impossible_gm_settings_are_one_line_errors(tmp_path, overrides, needle):
    from gmnas_cli.infra.errors import ConfigError
    from gmnas_cli.pipeline.validate import validate

    from .conftest import make_cfg

    cfg = make_cfg(tmp_path, "experiment=smoke", "criterion=gm", *overrides)
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        validate(cfg, "split")


def test_sequential_boundary_holds_the_error_rate_over_all_looks():
    """Fixed-seed simulation (docs/gm-estimator.md): with an exact tie the test stops early in at
    most about 2 alpha of runs (either candidate can be declared the winner; alpha = 1 - Phi(3) =
    0.00135 each, spent over the looks), where a normal threshold at every minibatch stopped in 5.6 %;
    with a clear gap it stops early and agrees with the full computation."""
    assert look_schedule(100, 10, 4) == [10, 18, 32, 56] and look_schedule(5, 10, 4) == []
    assert stop_threshold(10, 3.0, 1) > 3.0 + 1.0  # Student-t with 9 degrees of freedom, not normal
    tie = simulate_pair(0.0, 20000, 100, 10, 4, 3.0, seed=0)
    assert tie["stopped_early"] <= 2 * 0.00135 + 4 * (2 * 0.00135 / 20000) ** 0.5  # 2 alpha + 4 SE
    assert tie["differs"] <= 0.001
    clear = simulate_pair(1.0, 2000, 100, 10, 4, 3.0, seed=0)
    assert clear["stopped_early"] > 0.9 and clear["differs"] == 0.0 and clear["used"] < 0.5


def test_zero_spread_is_no_evidence():
    margins = {"e1": (0.5, None), "e2": (0.2, 50.0)}  # e1's difference has no spread
    assert not _wins(margins, 3.0)
    assert _wins({"e2": (0.2, 50.0), "lead": (float("inf"), None)}, 3.0)
    mean, t = margin_stats(np.full((12, 1), 0.5))
    assert mean[0] == 0.5 and np.isnan(t[0])
