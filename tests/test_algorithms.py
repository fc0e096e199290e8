"""Base algorithms: DARTS 2nd order, SNAS, GDAS, RSPS on masked (sub-)supernets (~30 s on 2 CPUs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from gmnas_cli.algorithms import ALGORITHMS, build_algorithm
from gmnas_cli.algorithms.darts2 import _unrolled_arch_grad_fp32, unrolled_arch_grad
from gmnas_cli.algorithms.rsps import path_connected
from gmnas_cli.config.schema import AlgoConfig, SpaceConfig
from gmnas_cli.spaces import build_space
from gmnas_cli.spaces.base import MixedOp

from ._reliability import run_inproc

NB201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


# ---------------------------------------------------------------- DARTS 2nd order


class ToyNet(nn.Module):
    """A smooth, tiny stand-in for a supernet: 2 mixed edges of 3 ops, BN with running stats."""

    ops = ["tanh", "softplus", "linear"]

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.stem = nn.Linear(5, 4)
        self.bn = nn.BatchNorm1d(4)
        make = {"tanh": lambda: nn.Sequential(nn.Linear(4, 4), nn.Tanh()),
                "softplus": lambda: nn.Sequential(nn.Linear(4, 4), nn.Softplus()),
                "linear": lambda: nn.Linear(4, 4)}
        self.edges = nn.ModuleList([MixedOp({o: make[o]() for o in self.ops}, self.ops) for _ in range(2)])
        self.head = nn.Linear(4, 3)
        self.register_buffer("mask_tensor", mask, persistent=False)
        self.enabled = [[k for k in range(3) if mask[e, k]] for e in range(2)]

    def forward(self, x: torch.Tensor, weights: torch.Tensor, active=None) -> torch.Tensor:
        active = self.enabled if active is None else active
        h = torch.tanh(self.bn(self.stem(x)))
        for e, edge in enumerate(self.edges):
            h = edge(h, weights[e], active[e])
        return self.head(h)


class ToySpace:
    edges = ["e0", "e1"]
    ops = ToyNet.ops


def _exact_second_order(algo, net: nn.Module, opt: torch.optim.SGD, train, val, official: bool) -> torch.Tensor:
    """d/d alpha of L_val(w - xi * step(w, alpha), alpha) by double backward; step = SGD's own, or the
    official DARTS/GM-NAS _compute_unrolled_model (momentum * buf + d, also with Nesterov)."""
    alpha = algo.alpha
    names = [n for n, p in net.named_parameters()]
    params = dict(net.named_parameters())
    weights = algo.probabilities()
    loss_t = F.cross_entropy(functional_call(net, params, (train[0], weights)), train[1])
    grads = torch.autograd.grad(loss_t, list(params.values()), create_graph=True, allow_unused=True)
    g = opt.param_groups[0]
    lr, mu, wd, nesterov = g["lr"], g["momentum"], g["weight_decay"], g["nesterov"]
    new = {}
    for n, gr in zip(names, grads):
        p = params[n]
        if gr is None:
            new[n] = p
            continue
        d = gr + wd * p
        if official:
            new[n] = p - lr * (opt.state[p]["momentum_buffer"] * mu + d)
            continue
        buf = opt.state[p]["momentum_buffer"] * mu + d
        new[n] = p - lr * (d + mu * buf if nesterov else buf)
    loss_v = F.cross_entropy(functional_call(net, new, (val[0], weights)), val[1])
    return torch.autograd.grad(loss_v, alpha)[0]


@pytest.mark.parametrize("step", ["official", "exact"])
@pytest.mark.parametrize("nesterov", [True, False])
def test_second_order_matches_double_backward(nesterov: bool, step: str) -> None:
    torch.manual_seed(0)
    mask = torch.tensor([[True, True, True], [True, False, True]])  # one disabled op: never moved
    net = ToyNet(mask).double()
    algo = ALGORITHMS["darts"](AlgoConfig(name="darts", order=2, unrolled_eps=0.01, unrolled_step=step),
                               ToySpace(), net)
    algo.alpha = (0.5 * torch.randn(2, 3, dtype=torch.float64)).requires_grad_()
    algo.arch_optimizer = torch.optim.Adam([algo.alpha], lr=3e-4)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=nesterov, weight_decay=5e-3)
    x = torch.randn(24, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (24,))
    train, val = (x[:12], y[:12]), (x[12:], y[12:])
    # One real step first, so that the momentum buffers exist.
    F.cross_entropy(net(train[0], algo.probabilities().detach()), train[1]).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)

    before = {k: v.clone() for k, v in net.state_dict().items()}
    fd, loss = unrolled_arch_grad(algo, train, val, F.cross_entropy, opt)
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN stats restored
    assert all(p.grad is None for p in net.parameters())
    assert loss > 0

    exact = _exact_second_order(algo, net, opt, train, val, official=step == "official")
    first = torch.autograd.grad(F.cross_entropy(net(val[0], algo.probabilities()), val[1]), algo.alpha)[0]
    rel = float((fd - exact).norm() / exact.norm())
    print(f"relative error {rel:.2e}")
    assert rel < 1e-4, rel
    assert float((first - exact).norm() / exact.norm()) > 10 * rel  # the Hessian term matters
    assert torch.all(fd[~mask] == 0)
    if nesterov:  # the two steps differ only with Nesterov
        other = _exact_second_order(algo, net, opt, train, val, official=step != "official")
        assert float((fd - other).norm() / exact.norm()) > 10 * rel


def test_second_order_hvp_under_amp_equals_fp32() -> None:
    """bf16 autocast around the arch step (amp=true) does not reach the unrolled step: the same
    gradient as in fp32 (under bf16 the HVP had cosine 0.77)."""
    space = build_space(SpaceConfig(name="nb201", ops=NB201_OPS, C=4, N=1), 10, 1)
    torch.manual_seed(0)
    net = space.build_supernet(space.full_mask())
    algo = build_algorithm(AlgoConfig(name="darts", order=2), space, net)
    with torch.no_grad():
        algo.alpha.normal_(0, 0.1)
    opt = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    train, val = (x[:8], y[:8]), (x[8:], y[8:])
    F.cross_entropy(net(train[0], algo.probabilities().detach()), train[1]).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    loss_fn = lambda logits, t: F.cross_entropy(logits.float(), t)  # noqa: E731  (the trainer's)
    fp32, loss32 = unrolled_arch_grad(algo, train, val, loss_fn, opt)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        amp, loss_amp = unrolled_arch_grad(algo, train, val, loss_fn, opt)
    assert amp.dtype == torch.float32
    assert torch.allclose(amp, fp32, rtol=1e-5, atol=1e-8) and loss_amp == pytest.approx(loss32, rel=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # without the guard the gradient moves
        unguarded, _ = _unrolled_arch_grad_fp32(algo, train, val, loss_fn, opt)
    assert not torch.allclose(unguarded, fp32, rtol=1e-3, atol=1e-6)


# ---------------------------------------------------------------- SNAS, GDAS, RSPS


def _nb201(mask_ops: dict[str, list[str]] | None = None, algo: str = "snas", **kw):
    space = build_space(SpaceConfig(name="nb201", ops=NB201_OPS, C=4, N=1), 10, 1)
    mask = space.full_mask()
    mask.update(mask_ops or {})
    net = space.build_supernet(mask)
    cfg = AlgoConfig(name=algo, **kw)
    return space, net, build_algorithm(cfg, space, net)


NARROW = {"1<-0": ["skip_connect", "nor_conv_3x3"], "2<-1": ["none", "avg_pool_3x3"], "3<-2": ["nor_conv_1x1"]}


def test_snas_samples_only_enabled_ops_and_sharpen() -> None:
    space, net, algo = _nb201(NARROW, "snas", tau_max=1.0, tau_min=1e-3)
    with torch.no_grad():
        algo.alpha.normal_()
    gen = torch.Generator().manual_seed(1)
    algo.epoch_start(0, 5)
    assert algo.tau == 1.0
    for _ in range(20):
        w, active = algo.train_weights(gen)
        assert active is None
        assert torch.all(w[~net.mask_tensor] == 0)
        assert torch.all(w[net.mask_tensor] > 0)
        assert torch.allclose(w.sum(-1), torch.ones(len(space.edges)))
    soft = min(float(algo.train_weights(gen)[0].detach().max(-1).values.min()) for _ in range(5))
    algo.epoch_start(5, 5)  # official TempScheduler: tau_min after T epochs
    assert algo.tau == pytest.approx(1e-3)
    for _ in range(20):
        w, _ = algo.train_weights(gen)
        assert torch.all(w[~net.mask_tensor] == 0)
        assert float(w.detach().max(-1).values.min()) > 0.99
    assert soft < 0.99
    # Gradient flows to enabled alpha entries only.
    w, _ = algo.train_weights(gen)
    loss = net(torch.randn(2, 1, 8, 8), w).sum()
    loss.backward()
    assert torch.isfinite(algo.alpha.grad).all() and torch.all(algo.alpha.grad[~net.mask_tensor] == 0)


def test_gdas_computes_only_the_sampled_op() -> None:
    space, net, algo = _nb201(NARROW, "gdas", tau_max=10.0, tau_min=0.1)
    algo.epoch_start(0, 10)
    assert algo.tau == 10.0
    calls: list[tuple[int, int]] = []
    for cell in net.cells:
        for e, mixed in enumerate(getattr(cell, "edges", [])):
            for k, op in enumerate(mixed.ops):
                op.register_forward_hook(lambda m, i, o, e=e, k=k: calls.append((e, k)))
    gen = torch.Generator().manual_seed(2)
    seen = set()
    for _ in range(10):
        w, active = algo.train_weights(gen)
        assert all(len(a) == 1 and net.mask_tensor[e, a[0]] for e, a in enumerate(active))
        assert torch.all(w[~net.mask_tensor] == 0)
        for e, a in enumerate(active):
            others = [k for k in range(len(space.ops)) if k != a[0]]
            assert torch.all(w[e, others] == 0) and float(w[e, a[0]].detach()) == pytest.approx(1.0)
        calls.clear()
        algo.alpha.grad = None
        net(torch.randn(2, 1, 8, 8), w, active).square().mean().backward()
        assert set(calls) <= {(e, a[0]) for e, a in enumerate(active)}
        assert all(c[1] == a[0] for c in calls for a in [active[c[0]]])
        seen |= {(e, a[0]) for e, a in enumerate(active)}
        g = algo.alpha.grad
        assert torch.isfinite(g).all() and torch.all(g[~net.mask_tensor] == 0)
    assert len(seen) > len(space.edges)  # draws vary


MANY_NONE = {"1<-0": ["none", "skip_connect"], "2<-0": ["none", "nor_conv_1x1"], "2<-1": ["none", "avg_pool_3x3"],
             "3<-0": ["none", "nor_conv_3x3"], "3<-1": ["none"], "3<-2": ["none", "skip_connect"]}


def test_rsps_paths_inside_mask_and_connected() -> None:
    assert not path_connected({"1<-0": "skip_connect", "2<-0": "none", "2<-1": "none", "3<-0": "none",
                               "3<-1": "none", "3<-2": "skip_connect"})
    assert path_connected({"1<-0": "none", "2<-0": "skip_connect", "2<-1": "none", "3<-0": "none",
                           "3<-1": "none", "3<-2": "avg_pool_3x3"})
    space, net, algo = _nb201(MANY_NONE, "rsps", eval_archs=3, eval_batches=1)
    assert not algo.has_arch_params
    gen = torch.Generator().manual_seed(3)
    paths = set()
    for _ in range(60):
        w, active = algo.train_weights(gen)
        arch = {e: space.ops[a[0]] for e, a in zip(space.edges, active)}
        assert space.arch_in_mask(arch, net.mask) and path_connected(arch)
        assert torch.equal(w.sum(-1), torch.ones(len(space.edges))) and torch.all(w[~net.mask_tensor] == 0)
        paths.add(space.arch_to_str(arch))
    assert len(paths) > 5
    batches = [(torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,)))]
    archs = [algo.derive(lambda: iter(batches), torch.Generator().manual_seed(4)) for _ in range(2)]
    assert archs[0] == archs[1] and space.arch_in_mask(archs[0], net.mask) and path_connected(archs[0])


# ---------------------------------------------------------------- stages, smoke preset


def test_second_order_darts_derives_inside_leaf_masks(tmp_path: Path) -> None:
    """Second-order DARTS end to end, two splits (every algorithm once: tests/test_contract.py)."""
    root = tmp_path / "x"
    for stage in ("warmup", "split", "search"):
        code, err = run_inproc(stage, "experiment=smoke", "algo=darts", "algo.order=2", "criterion=gm",
                               "name=x", f"out_dir={tmp_path}")
        assert code == 0, err
    tree = json.loads((root / "tree.json").read_text())
    leaves = [n for n in tree["nodes"] if not n.get("split")]
    assert len(leaves) == 4
    for leaf in leaves:
        result = json.loads((root / "search" / str(leaf["id"]) / "result.json").read_text())
        assert all(op in leaf["mask"][e] for e, op in result["arch_ops"].items())


def test_rsps_derive_scores_distinct_paths_on_the_whole_half() -> None:
    """Official rsws_project: eval_archs distinct paths, each on the whole architecture half."""
    space, net, algo = _nb201(None, "rsps", eval_archs=6, eval_batches=0)
    batches = [(torch.randn(4, 1, 8, 8), torch.randint(0, 10, (4,))) for _ in range(3)]
    scored: list[tuple[str, int]] = []
    calls = {"iter": 0}

    def val_batches():
        calls["iter"] += 1
        return iter(batches)

    original = net.forward

    def spy(x, w, active=None):
        scored.append((space.arch_to_str({e: space.ops[a[0]] for e, a in zip(space.edges, active)}), len(x)))
        return original(x, w, active)

    net.forward = spy
    algo.derive(val_batches, torch.Generator().manual_seed(0))
    paths = [p for p, _ in scored]
    assert len(set(paths)) == 6 and len(paths) == 6 * len(batches)  # 6 distinct paths x every batch
    assert calls["iter"] == 6
