"""DARTS space: evaluation network size, genotype strings, derivation, splitting on the smoke preset,
retrain with resume, successive halving (paper Appendix C, D.2)."""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf

from gmnas_cli.config.schema import RetrainConfig, SpaceConfig
from gmnas_cli.data import ImageData
from gmnas_cli.experiment.directory import Experiment
from gmnas_cli.infra.io import load_checkpoint, read_json, write_json
from gmnas_cli.pipeline.runtime import Runtime
from gmnas_cli.pipeline.validate import validate
from gmnas_cli.selection.halving import kept_per_rung, successive_halving
from gmnas_cli.spaces import build_space
from gmnas_cli.spaces.counting import count_params
from gmnas_cli.spaces.darts.ops import DARTS_OPS
from gmnas_cli.spaces.darts.space import DARTS_V2

from .conftest import make_cfg

# Small overrides on top of experiment=smoke that keep the DARTS supernet stages within seconds.
TINY = ["experiment=smoke", "space=darts", "dataset.limit=64", "train.batch_size=8",
        "train.max_steps_per_epoch=1", "retrain.max_steps_per_epoch=1", "retrain.batch_size=16"]


def darts_space(c: int = 4, n: int = 1, in_channels: int = 3):
    cfg = SpaceConfig(name="darts", ops=list(DARTS_OPS), C=c, N=n, nodes=4, unsplittable_ops=["none"],
                      split_cells=["normal"])
    return build_space(cfg, num_classes=10, in_channels=in_channels)


def test_darts_v2_has_3_35m_parameters():
    sp = darts_space()
    net = sp.build_network(sp.str_to_arch(DARTS_V2), RetrainConfig(C=36, layers=20, auxiliary_weight=0.4), 10, 3)
    assert abs(count_params(net) / 1e6 - 3.35) <= 0.01  # DARTS reports 3.349M (auxiliary head excluded)
    net.train()
    logits, aux = net(torch.randn(2, 3, 32, 32))
    assert logits.shape == aux.shape == (2, 10)
    net.eval()
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_edges_and_splittable_edges():
    sp = darts_space()
    assert len(sp.edges) == 28 and sp.edges[0] == "normal:2<-0" and sp.edges[-1] == "reduce:5<-4"
    assert sp.splittable_edges() == sp.edges[:14]
    assert "none" not in sp.splittable_ops(sp.full_mask(), "normal:2<-0")
    assert len(sp.splittable_ops(sp.full_mask(), "normal:2<-0")) == 7  # Few-Shot's 7 children


def test_genotype_string_round_trip():
    sp = darts_space()
    arch = sp.str_to_arch(DARTS_V2)
    assert len(arch) == 16 and arch["normal:5<-2"] == "dil_conv_3x3" and arch["reduce:3<-2"] == "skip_connect"
    assert sp.arch_to_str(arch) == DARTS_V2
    as_range = DARTS_V2.replace("[2, 3, 4, 5]", "range(2, 6)")
    assert sp.str_to_arch(as_range) == arch
    assert sp.json_to_arch(sp.arch_to_json(arch)) == arch
    assert sp.str_to_arch(json.dumps(sp.arch_to_json(arch))) == arch
    for bad in ("Genotype(normal=[('none', 0)])", "__import__('os')", DARTS_V2.replace("2)]", "7)]", 1)):
        with pytest.raises(ValueError):
            sp.str_to_arch(bad)


def test_derive_uses_only_enabled_ops_and_never_none():
    sp = darts_space()
    gen = torch.Generator().manual_seed(1)
    mask = sp.full_mask()
    for e in sp.edges[::3]:
        mask[e] = ["none", "skip_connect", "avg_pool_3x3"]
    mask["normal:4<-0"] = ["none"]  # only `none`: this input cannot be chosen
    for _ in range(10):
        w = torch.rand(len(sp.edges), len(sp.ops), generator=gen)
        w[:, sp.ops.index("none")] = 10.0  # `none` strongest everywhere: still never derived
        arch = sp.derive(w, mask)
        assert sp.arch_in_mask(arch, mask) and "none" not in arch.values()
        assert "normal:4<-0" not in arch
        for cell in ("normal", "reduce"):
            for i in range(2, 6):
                assert len([e for e in arch if e.startswith(f"{cell}:{i}<-")]) == 2
    # the two strongest edges win, each with its strongest enabled op
    w = torch.zeros(len(sp.edges), len(sp.ops))
    w[sp.edges.index("normal:4<-3"), sp.ops.index("sep_conv_5x5")] = 3.0
    w[sp.edges.index("normal:4<-0"), sp.ops.index("dil_conv_5x5")] = 2.0
    w[sp.edges.index("normal:4<-1"), sp.ops.index("max_pool_3x3")] = 1.0
    arch = sp.derive(w, sp.full_mask())
    assert [(e, o) for e, o in arch.items() if e.startswith("normal:4<-")] == [
        ("normal:4<-3", "sep_conv_5x5"), ("normal:4<-0", "dil_conv_5x5")]  # stronger edge first (DARTS)


def test_discrete_arch_runs_only_its_ops(monkeypatch):
    """Edge by edge, every op module that runs is the arch's; with a node's edges grouped
    (spaces/darts/grouped.py), every term a node computes is."""
    import gmnas_cli.spaces.darts.space as darts_mod
    from gmnas_cli.spaces.darts.grouped import edge_grouping

    sp = darts_space(in_channels=1)
    net = sp.build_supernet(sp.full_mask())
    arch = sp.str_to_arch(DARTS_V2)
    called: set[tuple[str, str]] = set()
    for cell, typ in zip(net.cells, net.cell_types):
        for k, mixed in enumerate(cell.edges):
            edge = sp.edges[k + (14 if typ == "reduce" else 0)]
            for name, op in zip(mixed.op_names, mixed.ops):
                op.register_forward_hook(lambda *_, key=(edge, name): called.add(key))
    w, active = sp.arch_weights(arch)
    with edge_grouping(False):
        assert net(torch.randn(2, 1, 8, 8), w, active).shape == (2, 10)
    assert called == set(arch.items())

    terms: set[tuple[str, str]] = set()
    inner = darts_mod.grouped_node_terms

    def recording(edges, *args, **kwargs):
        index, ys, zero_edge, e = inner(edges, *args, **kwargs)
        offset = 14 if any(edges is cell.edges for cell in net.cells if cell.reduction) else 0
        terms.update((sp.edges[offset + i // len(sp.ops)], sp.ops[i % len(sp.ops)]) for i in index)
        return index, ys, zero_edge, e

    monkeypatch.setattr(darts_mod, "grouped_node_terms", recording)
    with edge_grouping(True):
        assert net(torch.randn(2, 1, 8, 8), w, active).shape == (2, 10)
    assert terms == set(arch.items())


def test_shared_parameters_exclude_the_scored_edge_in_its_cell_type_only():
    sp = darts_space()
    net = sp.build_supernet(sp.full_mask())
    shared = {id(p) for p in sp.shared_parameters(net, "normal:3<-1")}
    k = sp.edges.index("normal:3<-1")
    for cell, typ in zip(net.cells, net.cell_types):
        params = {id(p) for p in cell.edges[k].parameters()}
        assert params and (params.isdisjoint(shared) if typ == "normal" else params <= shared)
        assert {id(p) for p in cell.edges[k + 1].parameters()} <= shared
        assert {id(p) for p in cell.preprocess1.parameters()}.isdisjoint(shared)  # op parameters only
    assert {id(p) for p in net.stem.parameters()}.isdisjoint(shared)


def test_space_preset_follows_the_paper(tmp_path):
    cfg = make_cfg(tmp_path, "space=darts", "algo=darts")
    assert (cfg.space.name, cfg.space.C, cfg.space.N, cfg.space.nodes) == ("darts", 16, 2, 4)
    assert list(cfg.space.ops) == DARTS_OPS and list(cfg.space.unsplittable_ops) == ["none"]
    assert (cfg.warmup_epochs, cfg.splits, cfg.branching, cfg.search_epochs) == (2, 3, 2, 15)  # D.2
    assert (cfg.train.batch_size, cfg.train.weight_decay, cfg.train.lr, cfg.train.lr_min) == (64, 3e-4, 0.025, 0.001)
    r = cfg.retrain  # D.2: the DARTS protocol is the default
    assert (r.layers, r.C, r.epochs, r.batch_size, r.cutout, r.drop_path, r.auxiliary_weight) == \
        (20, 36, 600, 96, 16, 0.3, 0.4)
    assert (r.lr, r.momentum, r.weight_decay, r.lr_schedule) == (0.025, 0.9, 3e-4, "cosine")
    validate(cfg, "run")
    img = make_cfg(tmp_path, "space=darts", "retrain=darts_imagenet")
    assert (img.retrain.network, img.retrain.layers, img.retrain.C) == ("imagenet", 14, 48)
    nb = make_cfg(tmp_path, "retrain=nb201")
    assert (nb.retrain.epochs, nb.retrain.layers, nb.retrain.C, nb.retrain.nesterov) == (200, 17, 16, True)


PAPER = {"paper_darts_gm_darts1": ("darts", 1, "gm", 7), "paper_darts_gm_darts2": ("darts", 2, "gm", 7),
         "paper_darts_gm_snas": ("snas", 1, "gm", 7), "paper_darts_fewshot_darts1": ("darts", 1, "exhaustive", 7)}


@pytest.mark.parametrize("preset", sorted(PAPER))
def test_paper_darts_presets(tmp_path, preset):
    algo, order, crit, n_ops = PAPER[preset]
    cfg = make_cfg(tmp_path, f"experiment={preset}", "dataset.root=data", "seed=2")
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    # official GM-NAS spaces.py: the 7 DARTS ops (`none` commented out)
    assert list(cfg.space.ops) == [o for o in DARTS_OPS if o != "none"] and len(cfg.space.ops) == n_ops
    assert list(cfg.space.unsplittable_ops) == []
    if crit == "gm":  # official train_search_ws.py: the scored op keeps its softmax weight
        assert cfg.criterion.scored_weight.value == "softmax"
    if algo == "snas":  # official snas-ws-darts-res.sh: --tau_max 1 --tau_min 0.03
        assert (cfg.algo.tau_max, cfg.algo.tau_min) == (1.0, 0.03)
    assert cfg.restart is (crit == "gm")
    assert (cfg.space.name, cfg.algo.name, cfg.algo.order, cfg.criterion.name) == ("darts", algo, order, crit)
    assert cfg.dataset.name == "cifar10" and cfg.select.criterion.value == "successive_halving"
    assert cfg.name == f"{preset}-cifar10-s2" and cfg.retrain.layers == 20
    if crit == "gm":
        assert (cfg.warmup_epochs, cfg.splits, cfg.branching, cfg.search_epochs) == (2, 3, 2, 15)
    else:
        assert (cfg.splits, cfg.search_epochs, cfg.criterion.edge_selection) == (1, 20, "random")
    validate(cfg, "run")


def _check_leaves(cfg, tree, edges_split: int) -> None:
    leaves = tree.leaves()
    assert len(leaves) == 2**edges_split
    for leaf in leaves:
        narrowed = [e for e, ops in leaf.mask.items() if len(ops) < len(DARTS_OPS)]
        assert len(narrowed) == edges_split and all(e.startswith("normal:") for e in narrowed)  # D.2
        for e in narrowed:
            assert "none" in leaf.mask[e] and len(leaf.mask[e]) in (4, 5)  # `none` + 3 or 4 of the 7 ops


def test_split_three_times_gives_eight_leaves_within_their_masks(tmp_path):
    """3 splits x branching 2 on the smoke preset; every leaf's derived genotype stays in its mask.
    (Random groups keep this fast; GM on the DARTS space: the next test and the slow one.)"""
    from gmnas_cli.experiment.tree import PartitionTree
    from gmnas_cli.stages import search, split, warmup

    cfg = make_cfg(tmp_path, *TINY, "algo=darts", "splits=3", "criterion=random", "warmup_epochs=0",
                   "search_epochs=1")
    warmup.main(cfg)
    split.main(cfg)
    exp = Experiment(cfg)
    tree = PartitionTree.load(exp.tree_path)
    _check_leaves(cfg, tree, 3)
    sp = Runtime(cfg).space
    gen = torch.Generator().manual_seed(0)
    for leaf in tree.leaves():  # any weights: the derived genotype stays inside the leaf's mask
        arch = sp.derive(torch.rand(len(sp.edges), len(sp.ops), generator=gen), leaf.mask)
        assert sp.arch_in_mask(arch, leaf.mask) and "none" not in arch.values()
    last = tree.leaves()[-1]  # the search stage on one leaf (one job per leaf, docs/method-facts.md)
    search.main(OmegaConf.merge(cfg, {"leaf": len(tree.leaves()) - 1}))  # leaf=K: K-th leaf
    res = read_json(exp.search_dir(last.id) / "result.json")
    arch = sp.str_to_arch(res["arch"])
    assert arch == res["arch_ops"] and sp.arch_in_mask(arch, last.mask) and "none" not in arch.values()


def test_gm_splits_a_darts_edge_into_balanced_groups(tmp_path):
    from gmnas_cli.experiment.tree import PartitionTree
    from gmnas_cli.stages import split, warmup

    cfg = make_cfg(tmp_path, *TINY, "algo=darts", "splits=1", "warmup_epochs=0", "criterion=gm", "criterion.batches=1",
                   "criterion.edge_selection=['normal:3<-1']")
    warmup.main(cfg)
    split.main(cfg)
    tree = PartitionTree.load(Experiment(cfg).tree_path)
    _check_leaves(cfg, tree, 1)
    score = tree[0].split["scores"]["normal:3<-1"]
    assert "none" not in score["ops"] and len(score["ops"]) == 7  # `none` is not split (docs/method-facts.md)
    assert len(score["distance"]) == 7 and sorted(len(g) for g in score["groups"]) == [3, 4]


@pytest.mark.slow
def test_smoke_split_command_with_gm_gives_eight_leaves(tmp_path):
    """``gmnas split space=darts algo=darts splits=3 experiment=smoke`` as given (GM on every edge)."""
    from gmnas_cli.experiment.tree import PartitionTree
    from gmnas_cli.stages import split, warmup

    cfg = make_cfg(tmp_path, "space=darts", "algo=darts", "splits=3", "experiment=smoke")
    warmup.main(cfg)
    split.main(cfg)
    tree = PartitionTree.load(Experiment(cfg).tree_path)
    _check_leaves(cfg, tree, 3)
    sp = Runtime(cfg).space
    gen = torch.Generator().manual_seed(0)
    for leaf in tree.leaves():
        arch = sp.derive(torch.rand(len(sp.edges), len(sp.ops), generator=gen), leaf.mask)
        assert sp.arch_in_mask(arch, leaf.mask) and "none" not in arch.values()


def _fake_selection(cfg, arch: str) -> Experiment:
    exp = Experiment(cfg)
    exp.root.mkdir(parents=True, exist_ok=True)
    write_json(exp.selection_path, {"criterion": "val_loss", "leaf": 0, "arch": arch, "candidates": [],
                                    "benchmark": None, "evidence": {}})
    exp.mark_done("select")
    return exp


def test_retrain_runs_and_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    from gmnas_cli.stages import retrain
    from gmnas_cli.training.retrain import NetworkTrainer

    over = [*TINY, "space.nodes=4", "retrain.epochs=2", "retrain.cutout=4"]  # DARTS_V2 has 4 nodes
    full = make_cfg(tmp_path, *over, "name=full")
    _fake_selection(full, DARTS_V2)
    retrain.main(full)
    res = read_json(Experiment(full).retrain_dir / "result.json")
    assert res["arch"] == DARTS_V2 and res["epochs"] == 2 and res["benchmark"] is None
    assert 0.0 <= res["test_acc"] <= 1.0 and res["test_error"] == pytest.approx(100 * (1 - res["test_acc"]))
    assert res["params_m"] > 0

    cut = make_cfg(tmp_path, *over, "name=cut")
    exp = _fake_selection(cut, DARTS_V2)
    save = NetworkTrainer.save

    def save_then_stop(self, path):
        save(self, path)
        if self.epoch == 1:
            raise KeyboardInterrupt  # killed right after the first epoch's checkpoint

    monkeypatch.setattr(NetworkTrainer, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        retrain.main(cut)
    assert load_checkpoint(exp.retrain_dir / "ckpt.pt")["epoch"] == 1
    assert not (exp.retrain_dir / "result.json").exists()
    monkeypatch.setattr(NetworkTrainer, "save", save)
    retrain.main(cut)
    resumed = read_json(exp.retrain_dir / "result.json")
    assert resumed["test_acc"] == res["test_acc"]
    a = load_checkpoint(Experiment(full).retrain_dir / "ckpt.pt")["model"]
    b = load_checkpoint(exp.retrain_dir / "ckpt.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # resume reproduces the uninterrupted run


def test_kept_per_rung():
    assert kept_per_rung(8, [10, 20, 40], 2) == [4, 2, 1]  # GM-NAS: 8 leaves
    assert kept_per_rung(7, [10, 20, 40], 2) == [4, 2, 1]  # Few-Shot NAS: 7 leaves
    assert kept_per_rung(4, [1, 1, 1], 2) == [2, 1]  # smoke: stops once one is left
    assert kept_per_rung(8, [1], 2) == [4]  # schedule ends first: best of the last rung
    assert kept_per_rung(1, [1, 1], 2) == []


def _candidates(sp, n: int) -> list[dict]:
    gen = torch.Generator().manual_seed(5)
    return [{"leaf": i + 3, "arch": sp.arch_to_str(sp.sample_arch(sp.full_mask(), gen))} for i in range(n)]


def test_successive_halving_on_smoke_is_deterministic_and_never_reads_test(tmp_path, monkeypatch):
    def no_test(self):
        raise AssertionError("successive halving read the test split")

    monkeypatch.setattr(ImageData, "test", no_test)
    cfg = make_cfg(tmp_path, *TINY, "select.criterion=successive_halving", "name=a")
    assert list(cfg.select.successive_halving.schedule) == [1, 1, 1] and cfg.select.successive_halving.eta == 2
    rt = Runtime(cfg)
    cands = _candidates(rt.space, 4)  # smoke: 2 splits x branching 2 = 4 leaves
    best, ev = successive_halving(rt, cands)
    assert [len(r["candidates"]) for r in ev["rungs"]] == [4, 2]
    assert [len(r["kept"]) for r in ev["rungs"]] == [2, 1]
    assert best["leaf"] == ev["rungs"][-1]["kept"][0]
    first = ev["rungs"][0]
    assert set(first["val_acc"]) == {str(c["leaf"]) for c in cands}
    ranked = sorted(first["candidates"], key=lambda leaf: (-first["val_acc"][str(leaf)],
                                                           first["val_loss"][str(leaf)]))
    assert first["kept"] == ranked[:2]
    again = successive_halving(Runtime(make_cfg(tmp_path, *TINY, "select.criterion=successive_halving",
                                                "name=b")), cands)
    assert again == (best, ev)
