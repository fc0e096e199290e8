"""The plugin contract, checked once for every registered space, algorithm and criterion.

A plugin gets these tests by being registered (``SPACES``, ``ALGORITHMS``, ``CRITERIA``); which
algorithm searches which space comes from ``Algorithm.spaces`` and ``SearchSpace.algorithms``
(``pipeline.validate.compatible``). Sizes are ``experiment=smoke`` (with its per-space file in
``conf/experiment_space/`` where a space needs one). Space-specific behaviour (genotype rules,
binary gates, elastic kernels) stays in the space's own test file.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from gmnas_cli.algorithms import ALGORITHMS, build_algorithm
from gmnas_cli.config.derived import effective_splits
from gmnas_cli.criteria import CRITERIA
from gmnas_cli.pipeline.validate import compatible
from gmnas_cli.spaces import SPACES, Mask, SearchSpace, Supernet, build_space
from gmnas_cli.spaces.darts.grouped import edge_grouping
from tests._reliability import compare_experiments, run_forked, run_inproc
from tests.conftest import make_cfg

SPACE_NAMES = SPACES.names()
PAIRS = [(s, a) for s in SPACE_NAMES for a in ALGORITHMS.names() if compatible(s, a)]
FAST_PAIRS = {p for p in PAIRS if p[0] == "nb201"}  # the rest of the end-to-end grid is marked slow


def _pair_params(pairs: list[tuple[str, str]]) -> list:
    return [pytest.param(s, a, id=f"{s}-{a}", marks=() if (s, a) in FAST_PAIRS else pytest.mark.slow)
            for s, a in pairs]


@functools.cache
def smoke_cfg(space: str, algo: str | None = None) -> DictConfig:
    algo = algo or next(a for s, a in PAIRS if s == space)
    return make_cfg("outputs", "experiment=smoke", f"space={space}", f"algo={algo}")


def smoke_space(space: str) -> SearchSpace:
    cfg = smoke_cfg(space)
    d = cfg.dataset
    return build_space(cfg.space, int(d.num_classes), int(d.in_channels), int(d.image_size))


def narrowed_mask(sp: SearchSpace, gen: torch.Generator) -> Mask:
    """A random mask inside the full one: every edge keeps at least one op, one of them splittable."""
    full = sp.full_mask()
    mask: Mask = {}
    for e in sp.edges:
        ops = full[e]
        keep = [o for o, r in zip(ops, torch.rand(len(ops), generator=gen).tolist()) if r < 0.5]
        splittable = sp.splittable_ops(full, e)
        if not any(o in splittable for o in keep):
            keep.append(splittable[int(torch.randint(len(splittable), (1,), generator=gen))])
        mask[e] = [o for o in ops if o in keep]
    return mask


# -- which ops a supernet's forward pass computes, per space ----------------------------------

Recorder = Callable[[Supernet, SearchSpace, set], None]


def _record_mixed_ops(net: Supernet, sp: SearchSpace, calls: set) -> None:
    """Cells holding one ``MixedOp`` per edge (NB201; DARTS's reduce cells hold the second half)."""
    per_cell = len(sp.edges) // (2 if sp.name == "darts" else 1)
    for cell in net.cells:
        offset = per_cell if getattr(cell, "reduction", False) else 0
        for k, mixed in enumerate(getattr(cell, "edges", [])):
            for name, op in zip(mixed.op_names, mixed.ops):
                op.register_forward_hook(lambda *_, key=(sp.edges[offset + k], name): calls.add(key))


def _record_mobilenet(net: Supernet, sp: SearchSpace, calls: set) -> None:
    for e, block in zip(sp.edges, net.blocks):
        for name, key in zip(sp.ops, block.op_key):
            if key in block.ops:
                block.ops[key].register_forward_hook(lambda *_, k=(e, name): calls.add(k))


def _record_ofa(net: Supernet, sp: SearchSpace, calls: set) -> None:
    """The kernel size each elastic block's depthwise conv is called with (its ops share one weight)."""
    for e, block in zip(sp.edges, net.blocks):
        block.depthwise.register_forward_hook(lambda _m, args, _o, e=e: calls.add((e, f"k{args[1]}")))


RECORDERS: dict[str, Recorder] = {"nb201": _record_mixed_ops, "darts": _record_mixed_ops,
                                  "mobilenet": _record_mobilenet, "ofa_mbv3": _record_ofa}


@contextlib.contextmanager
def recorded(net: Supernet, sp: SearchSpace) -> Iterator[set]:
    calls: set = set()
    RECORDERS[sp.name](net, sp, calls)
    with edge_grouping(False):  # DARTS: op modules called one by one (the grouped path: test_darts_space)
        yield calls


# -- space contract ---------------------------------------------------------------------------

def test_every_registered_space_can_be_probed() -> None:
    missing = [s for s in SPACE_NAMES if s not in RECORDERS]
    assert not missing, f"add an op recorder to tests/test_contract.py RECORDERS for {missing}"


@pytest.mark.parametrize("space", SPACE_NAMES)
def test_arch_string_round_trip(space: str) -> None:
    sp = smoke_space(space)
    gen = torch.Generator().manual_seed(0)
    for i in range(10):
        mask = sp.full_mask() if i % 2 == 0 else narrowed_mask(sp, gen)
        arch = sp.sample_arch(mask, gen)
        assert sp.arch_in_mask(arch, mask)
        text = sp.arch_to_str(arch)
        assert sp.str_to_arch(text) == arch
        assert sp.arch_to_str(sp.str_to_arch(text)) == text


@pytest.mark.parametrize("space", SPACE_NAMES)
def test_derive_stays_inside_the_mask(space: str) -> None:
    sp = smoke_space(space)
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        mask = narrowed_mask(sp, gen)
        w = torch.rand(len(sp.edges), len(sp.ops), generator=gen)
        w[~sp.mask_tensor(mask)] = 10.0  # disabled ops strongest: still never derived
        assert sp.arch_in_mask(sp.derive(w, mask), mask)


@pytest.mark.parametrize("space, algo", [pytest.param(s, a, id=f"{s}-{a}") for s, a in PAIRS])
def test_disabled_ops_never_run(space: str, algo: str) -> None:
    """Whatever the algorithm samples or weights, a forward pass computes enabled ops only."""
    sp = smoke_space(space)
    cfg = smoke_cfg(space, algo)
    gen = torch.Generator().manual_seed(2)
    mask = narrowed_mask(sp, gen)
    torch.manual_seed(0)
    net = sp.build_supernet(mask)
    alg = build_algorithm(cfg.algo, sp, net)
    alg.init_alpha(gen)
    enabled = {(e, o) for e in sp.edges for o in mask[e]}
    x = torch.randn(2, sp.in_channels, int(cfg.dataset.image_size), int(cfg.dataset.image_size), generator=gen)
    with recorded(net, sp) as calls, torch.no_grad():
        for pick in (alg.train_weights, alg.eval_weights, alg.score_weights) * 2:
            weights, active = pick(gen)
            net(x, weights, active)
    assert calls, "the recorder saw no op run"
    assert calls <= enabled, sorted(calls - enabled)


# -- end to end: warmup, split, search of every space with every algorithm it supports ---------

def _stages(out: Path, args: list[str], stages: tuple[str, ...] = ("warmup", "split", "search")) -> Path:
    for stage in stages:
        code, err = run_inproc(stage, *args, f"out_dir={out}")
        assert code == 0, err
    return out / "e"


def _leaves(root: Path) -> list[dict]:
    nodes = json.loads((root / "tree.json").read_text())["nodes"]
    return [n for n in nodes if not n.get("split")]


def _pair_args(space: str, algo: str) -> list[str]:
    return ["experiment=smoke", f"space={space}", f"algo={algo}", "criterion=gm", "splits=1", "search_epochs=1",
            "name=e", "report.plots=false"]


@pytest.mark.parametrize("space, algo", _pair_params(PAIRS))
def test_smoke_warmup_split_search(tmp_path: Path, space: str, algo: str) -> None:
    root = _stages(tmp_path, _pair_args(space, algo))
    sp = smoke_space(space)
    leaves = _leaves(root)
    assert len(leaves) == 2  # one GM split, branching 2
    for leaf in leaves:
        res = json.loads((root / "search" / str(leaf["id"]) / "result.json").read_text())
        arch = sp.str_to_arch(res["arch"])
        assert sp.arch_in_mask(arch, leaf["mask"])
        assert (res["alpha"] is None) == (not ALGORITHMS[algo].has_arch_params)


@pytest.mark.slow
@pytest.mark.parametrize("space, algo", [pytest.param(s, a, id=f"{s}-{a}") for s, a in PAIRS])
def test_kill_and_resume_equals_an_uninterrupted_run(tmp_path: Path, space: str, algo: str) -> None:
    """SIGKILL after the first checkpoint write of the split stage, then resume: the same artefacts."""
    args = _pair_args(space, algo)
    ref = _stages(tmp_path / "ref", args)
    out = tmp_path / "killed"
    _stages(out, args, ("warmup",))
    run_forked("split", *args, f"out_dir={out}", kill="write:ckpt.pt:1")
    _stages(out, args, ("split", "search"))
    files = [str(p.relative_to(ref)) for p in ref.rglob("*") if p.is_file()
             and p.relative_to(ref).parts[0] in ("tree.json", "nodes", "search")]
    compare_experiments(ref, out / "e", only=[f for f in files if not f.endswith(".prev")])


# -- criterion contract -----------------------------------------------------------------------

@pytest.mark.parametrize("criterion", CRITERIA.names())
def test_criterion_split_partitions_the_parent_edge(tmp_path: Path, criterion: str) -> None:
    """Children narrow exactly one edge of their parent, their groups partition its ops, and a
    criterion that does not split leaves the root alone."""
    args = ["experiment=smoke", f"criterion={criterion}", "splits=1", "name=e"]
    root = _stages(tmp_path, args, ("warmup", "split"))
    nodes = json.loads((root / "tree.json").read_text())["nodes"]
    if not effective_splits(make_cfg(tmp_path, *args)):
        assert len(nodes) == 1 and not nodes[0].get("split")
        return
    parent, children = nodes[0], [n for n in nodes if n.get("parent") == 0]
    edge, groups = parent["split"]["edge"], parent["split"]["groups"]
    assert len(children) == len(groups) >= 2
    flat = [o for g in groups for o in g]
    assert len(flat) == len(set(flat)) and set(flat) <= set(parent["mask"][edge])  # disjoint groups
    assert set().union(*(c["mask"][edge] for c in children)) == set(parent["mask"][edge])
    for child, group in zip(children, groups):
        assert set(group) <= set(child["mask"][edge])
        assert {e: m for e, m in child["mask"].items() if e != edge} == \
               {e: m for e, m in parent["mask"].items() if e != edge}


@pytest.mark.gpu
def test_smoke_warmup_split_search_on_cuda(tmp_path: Path) -> None:
    """The fast pair end to end on the GPU: leaves and derived architectures inside their masks."""
    space, algo = "nb201", "darts"
    root = _stages(tmp_path, [*_pair_args(space, algo), "device=cuda"])
    sp = smoke_space(space)
    for leaf in _leaves(root):
        res = json.loads((root / "search" / str(leaf["id"]) / "result.json").read_text())
        assert sp.arch_in_mask(sp.str_to_arch(res["arch"]), leaf["mask"])
