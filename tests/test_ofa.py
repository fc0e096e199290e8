"""space=ofa_mbv3 + algo=ofa: elastic layers, MACs, formats, cut, evolution, end to end."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from gmnas_cli.algorithms.ofa.evolution import Evolution
from gmnas_cli.criteria.cut import balanced_min_cut
from gmnas_cli.infra.errors import ConfigError, StageError
from gmnas_cli.spaces import build_space
from gmnas_cli.spaces.mbconv.elastic import DynamicMBConv
from gmnas_cli.spaces.ofa.macs import subnet_macs
from gmnas_cli.spaces.ofa.space import OfaSpace, Subnet, extract_subnet

from ._reliability import clean_run, compare_experiments, error_lines, run_forked, run_inproc
from .conftest import make_cfg

TINY = ["experiment=smoke", "space=ofa_mbv3", "algo=ofa"]


@functools.cache
def _tiny_cfg():
    return make_cfg("outputs", *TINY)


def _space(classes: int = 10) -> OfaSpace:
    return build_space(_tiny_cfg().space, classes, 3)  # type: ignore[return-value]


def _randomise(net: torch.nn.Module, seed: int = 0) -> None:
    """Random weights, kernel transforms and BN statistics (identity transforms would hide bugs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(net.named_parameters()) + list(net.named_buffers()):
            if t.dtype.is_floating_point:
                r = torch.rand(t.shape, generator=g)
                t.copy_(0.5 + r if "running_var" in name else (r - 0.5) * 0.6)


# -- elastic layers ---------------------------------------------------------------------------

def test_elastic_kernel_is_transformed_centre_crop() -> None:
    sp = _space()
    net = sp.build_supernet(sp.full_mask())
    _randomise(net)
    dw = net.blocks[0].depthwise
    w7 = dw.conv.weight  # C x 1 x 7 x 7
    c = 8
    m75, m53 = dw.transforms["7to5"], dw.transforms["5to3"]
    k5 = (w7[:c, :, 1:6, 1:6].reshape(-1, 25) @ m75.T).view(c, 1, 5, 5)
    k3 = (k5[:, :, 1:4, 1:4].reshape(-1, 9) @ m53.T).view(c, 1, 3, 3)
    assert torch.allclose(dw.active_filter(c, 5), k5)
    assert torch.allclose(dw.active_filter(c, 3), k3)
    assert torch.equal(dw.active_filter(c, 7), w7[:c])
    # The transforms are learned: the k3 loss has a gradient in both matrices.
    dw.active_filter(c, 3).sum().backward()
    assert m75.grad is not None and m53.grad is not None and m53.grad.abs().sum() > 0


def test_expand_keeps_the_most_important_channels() -> None:
    torch.manual_seed(0)
    block = DynamicMBConv(8, 16, [3, 5, 7], [3, 4, 6], 1, "h_swish", True)
    _randomise(block, 1)
    block.eval()
    x = torch.randn(2, 8, 6, 6)
    before = block(x, 5, 6).detach()
    importance = block.project.weight.abs().sum(dim=(0, 2, 3)).detach().clone()
    top = set(torch.sort(importance, descending=True).indices[: block.mid_channels(3)].tolist())
    old_proj = block.project.weight.detach().clone()
    block.reorganize_middle(0)
    new_imp = block.project.weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(new_imp[:-1] >= new_imp[1:])  # sorted, most important first
    kept = block.project.weight[:, : block.mid_channels(3)]
    # the e3 subnet's channels are exactly the top-importance ones of before
    found = {int(torch.nonzero((old_proj - kept[:, j:j + 1]).abs().sum(dim=(0, 2, 3)) == 0)[0])
             for j in range(kept.shape[1])}
    assert found == top
    assert torch.allclose(block(x, 5, 6), before, atol=1e-5)  # a permutation: the full block is unchanged


def test_depth_uses_the_first_blocks_of_each_stage() -> None:
    sp = _space()
    net = sp.build_supernet(sp.full_mask())
    called: list[int] = []
    for i, b in enumerate(net.blocks):
        b.register_forward_hook(lambda m, a, o, i=i: called.append(i))
    sub = Subnet([7] * 4, [6.0] * 4, [1, 2])
    net.set_active(sub)
    net(torch.randn(2, 3, 32, 32), None, net.active_for(sub))
    assert called == [0, 2, 3]  # stage 1: its first block; stage 2: both
    assert sp.active_blocks(sub) == [0, 2, 3]


def test_extracted_subnet_equals_the_dynamic_forward_and_macs_equal_flop_counter() -> None:
    sp = _space()
    net = sp.build_supernet(sp.full_mask())
    _randomise(net)
    net.eval()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 3, 32, 32)
    for _ in range(3):
        sub = sp.sample_subnet(sp.full_mask(), g, sp.expand_ratios, sp.depths)
        net.set_active(sub)
        static = extract_subnet(net, sub).eval()
        assert torch.allclose(static(x), net(x, None, net.active_for(sub)), atol=1e-5)
        with FlopCounterMode(display=False) as fc:
            static(torch.randn(1, 3, 24, 24))
        assert subnet_macs(sp, sub, 24) * 2 == fc.get_total_flops()


def test_weight_init_is_ofa_he_fout() -> None:
    """OFA ``init_models(net, 'he_fout')`` on the supernet and a static subnet: conv N(0, 2/(k k out)),
    BN 1/0, conv and linear biases 0; the kernel transforms stay identity."""
    sp = _space()
    for net in (sp.build_supernet(sp.full_mask()), sp.build_network(sp.subnet_to_arch(sp.max_subnet()), None, 10, 3)):
        convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
        ratio = torch.cat([m.weight.detach().flatten() / (2.0 / (m.kernel_size[0] ** 2 * m.out_channels)) ** 0.5
                           for m in convs])
        assert abs(float(ratio.std()) - 1.0) < 0.05
        assert all(m.bias is None or not m.bias.any() for m in convs)
        assert not net.classifier.bias.any()
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                assert torch.equal(m.weight, torch.ones_like(m.weight)) and not m.bias.any()
    dw = sp.build_supernet(sp.full_mask()).blocks[0].depthwise
    assert all(torch.equal(t, torch.eye(t.shape[0])) for t in dw.transforms.values())


def test_paper_size_macs_and_params() -> None:
    """OFA w1.0: 7.68M params, 121-566 MFLOPs at 224; w1.2: 10.72M, 193-843 (docs/ofa.md)."""
    for wm, params, lo, hi in ((1.0, 7.68, 121.28, 566.17), (1.2, 10.72, 193.08, 843.10)):
        cfg = make_cfg("outputs", "space=ofa_mbv3", "algo=ofa", f"space.width_mult={wm}")
        sp = build_space(cfg.space, 1000, 3)
        assert len(sp.edges) == 20 and sp.ops == ["k3", "k5", "k7"]
        assert round(subnet_macs(sp, sp.min_subnet(), 224) / 1e6, 2) == lo
        assert round(subnet_macs(sp, sp.max_subnet(), 224) / 1e6, 2) == hi
        n = sum(p.numel() for p in sp.build_supernet(sp.full_mask()).parameters())
        assert round(n / 1e6, 2) == params


# -- formats ---------------------------------------------------------------------------------

def test_subnet_string_and_json_round_trip() -> None:
    sp = _space()
    sub = Subnet([5, 3, 7, 3], [4.0, 6.0, 3.0, 6.0], [1, 2])
    arch = sp.subnet_to_arch(sub)
    text = sp.arch_to_str(arch)
    assert text == "k5e4 | k7e3 k3e6"
    assert sp.str_to_arch(text) == arch
    back = sp.arch_to_subnet(sp.str_to_arch(text))
    assert sp.subnet_to_arch(back) == arch and back.d == [1, 2]
    assert sp.subnet_from_json(json.loads(json.dumps(sub.to_json()))).to_json() == sub.to_json()
    assert sp.str_to_arch(json.dumps(sub.to_json())) == arch  # OFA's own {ks, e, d} config
    assert sp.str_to_arch(json.dumps({**sub.to_json(), "image_size": 32})) == arch  # as subnet.json
    with pytest.raises(ConfigError, match="subnet config"):
        sp.str_to_arch(json.dumps({"ks": [5, 3], "e": [4], "d": [1, 2]}))
    net = sp.build_network(arch, None, 10, 3)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("text, token", [("k5e4 | k4e3 k3e6", "k4e3"), ("k5e4 | k7e5 k3e6", "k7e5"),
                                         ("k5e4 | k7x3", "k7x3")])
def test_str_to_arch_names_the_first_bad_token(text: str, token: str) -> None:
    with pytest.raises(ConfigError, match=token):
        _space().str_to_arch(text)


# -- cut ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("alone", [0, 1, 2])
def test_b2_cut_of_three_kernels_finds_every_optimum(alone: int) -> None:
    """The official fork always returns {k7} | {k3, k5}; the balanced min-cut finds the op that
    is far from the other two, whichever it is."""
    dist = np.full((3, 3), 0.2)
    others = [i for i in range(3) if i != alone]
    dist[alone, others] = dist[others, alone] = 0.9
    np.fill_diagonal(dist, 0.0)
    groups, _ = balanced_min_cut(1.0 - dist, 2)
    assert sorted(map(sorted, groups)) == sorted([[alone], others])


# -- evolution ---------------------------------------------------------------------------------

def _fake_fitness(sub: Subnet) -> tuple[float, float]:
    score = sum(k * (i + 1) for i, k in enumerate(sub.ks)) + sum(sub.e) + 3 * sum(sub.d)
    return float(score % 17) / 17, float(score % 5)


def _evolution(tmp_path: Path, mask: dict, iterations: int, window=(0.5, 1.6)) -> Evolution:
    sp = _space()
    cfg = copy.deepcopy(_tiny_cfg().algo.evolution)
    cfg.iterations, cfg.flops_window = iterations, list(window)
    return Evolution(sp, mask, cfg, 32, _fake_fitness, 0, "t", tmp_path / "evo.json")


def test_evolution_stays_in_mask_and_window_and_resumes(tmp_path: Path) -> None:
    sp = _space()
    mask = {**sp.full_mask(), "b1": ["k3"], "b3": ["k5", "k7"]}
    a = _evolution(tmp_path / "a", mask, 4).run()
    cands = json.loads((tmp_path / "a" / "evo.json").read_text())["candidates"]
    assert len(cands) == a["evaluated"] > 6
    for c in cands:
        sub = Subnet(**c["subnet"])
        assert sub.ks[0] == 3 and sub.ks[2] in (5, 7)
        assert 0.5 <= c["mflops"] <= 1.6 and abs(subnet_macs(sp, sub, 32) / 1e6 - c["mflops"]) < 1e-6
    _evolution(tmp_path / "b", mask, 2).run()  # "killed" after 2 iterations, then resumed to 4
    b = _evolution(tmp_path / "b", mask, 4).run()
    assert b == a
    with pytest.raises(StageError, match="outside this leaf's range"):
        _evolution(tmp_path / "c", mask, 1, window=(50, 60))


# -- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("override, needle", [
    ("algo.evolution.flops_window=[600,500]", "lo <= hi"),
    ("space.ops=[k3,k4]", "unknown kernel size 'k4'"),
    ("space.depths=[0,2]", "space.depths"),
    ("space.depths=[2,5]", "space.depths"),
])
def test_bad_ofa_input_is_one_line_exit_2_nothing_written(tmp_path: Path, override: str, needle: str) -> None:
    code, err = run_inproc("warmup", *TINY, override, f"out_dir={tmp_path / 'out'}", "dataset.root=/nonexistent")
    assert code == 2, err
    lines = error_lines(err)
    assert len(lines) == 1 and needle in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_ofa_space_needs_algo_ofa(tmp_path: Path) -> None:
    code, err = run_inproc("warmup", "experiment=smoke", "space=ofa_mbv3", "algo=darts", f"out_dir={tmp_path / 'o'}")
    assert code == 2 and error_lines(err) == ["gmnas warmup: error: algo=darts cannot search space=ofa_mbv3; "
                                              "algorithms for this space: ofa"], err
    assert not (tmp_path / "o").exists()


# -- end to end -----------------------------------------------------------------------------

def _folders(root: Path, classes: int = 4, per_class: int = 40) -> Path:
    rng = np.random.default_rng(0)
    for c in range(classes):
        for split, n in (("train", per_class), ("val", 5)):
            d = root / split / f"n{c:02d}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = np.full((32, 32, 3), 40 * (c + 1), np.uint8) + rng.integers(0, 90, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(img).save(d / f"{i}.png")
    return root


def _args(data: Path) -> list[str]:
    return [*TINY, "criterion=gm", "splits=2", "branching=[2,3]", "dataset=imagenet", f"dataset.root={data}",
            "dataset.num_classes=4", "dataset.image_size=32", "name=e", "report.plots=false"]


@pytest.fixture(scope="module")
def ofa_run(tmp_path_factory) -> tuple[Path, list[str]]:
    base = tmp_path_factory.mktemp("ofa")
    args = _args(_folders(base / "data"))
    code, err = run_inproc("run", *args, f"out_dir={base / 'out'}")
    assert code == 0, err
    return base / "out" / "e", args


def test_acceptance_run(ofa_run) -> None:
    """`gmnas run experiment=smoke space=ofa_mbv3 algo=ofa criterion=gm splits=2 branching=[2,3]`."""
    root, _ = ofa_run
    tree = json.loads((root / "tree.json").read_text())
    leaves = [n for n in tree["nodes"] if "split" not in n]
    assert len(leaves) == 6
    lo, hi = 0.1, 2.0  # experiment_space/smoke_ofa_mbv3.yaml
    sp = _space(classes=4)
    for leaf in leaves:
        mask = leaf["mask"]
        cands = json.loads((root / "search" / str(leaf["id"]) / "evolution.json").read_text())["candidates"]
        assert cands
        for c in cands:  # every evaluated candidate: kernels of the mask, inside the FLOPs window
            sub = Subnet(**c["subnet"])
            assert all(f"k{sub.ks[i]}" in mask[sp.edges[i]] for i in range(len(sub.ks)))
            assert lo <= c["mflops"] <= hi
        res = json.loads((root / "search" / str(leaf["id"]) / "result.json").read_text())
        assert sp.arch_in_mask(sp.str_to_arch(res["arch"]), mask)
        assert lo <= res["mflops"] <= hi and res["params_m"] > 0
    sel = json.loads((root / "selection.json").read_text())
    best = min(sel["candidates"], key=lambda c: c["val_loss"])
    assert sel["leaf"] == best["leaf"] and best["mflops"] > 0 and best["params_m"] > 0
    assert (root / "retrain" / "result.json").exists()
    for table in ("ofa", "ofa_splits"):  # paper Table 5's OFA rows and Table 9
        code, err = run_inproc("report", f"report.experiments=[{root}]", f"report.table={table}",
                               f"report.out={root / 'rep' / table}", "report.plots=false", "report.formats=[csv]")
        assert code == 0, err
    t5 = (root / "rep" / "ofa").glob("*.csv")
    text = "".join(p.read_text() for p in t5)
    assert "GM + OFA" in text and "mflops" in text


@pytest.mark.slow
@pytest.mark.parametrize("kill", ["write:full.pt:1", "write:expand0.pt:1", "write:evolution.json:2"])
def test_sigkill_resume_and_same_seed_identical(ofa_run, tmp_path: Path, kill: str) -> None:
    """A SIGKILL while the full network trains, during progressive shrinking or during evolution
    resumes to identical artefacts (and a second run with the same seed equals the first)."""
    ref, args = ofa_run
    stages = ["warmup", "split", "search", "select"]
    run_forked("run", *args, f"out_dir={tmp_path}", kill=kill)
    clean_run(tmp_path, args, stages)
    files = [str(p.relative_to(ref)) for p in ref.rglob("*") if p.is_file() and p.parts[len(ref.parts)] in
             ("tree.json", "nodes", "search", "selection.json")]
    compare_experiments(ref, tmp_path / "e", only=[f for f in files if not f.endswith(".prev")])


# -- presets -----------------------------------------------------------------------------------

def test_paper_ofa_presets_compose_with_the_paper_settings() -> None:
    from omegaconf import OmegaConf

    from gmnas_cli.pipeline.validate import validate

    expect = {"paper_ofa_gm": ("gm", 2, [2, 3], 40), "paper_ofa_gm_3splits": ("gm", 3, 2, 30),
              "paper_ofa_fewshot": ("exhaustive", 1, 3, 40), "paper_ofa_oneshot": ("none", 0, 2, 40)}
    for preset, (crit, splits, branching, warm) in expect.items():
        cfg = make_cfg("outputs", f"experiment={preset}", "dataset.root=data")
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        validate(cfg, "run")
        got = OmegaConf.to_container(cfg.branching) if not isinstance(cfg.branching, int) else cfg.branching
        assert (cfg.criterion.name, cfg.splits, got, cfg.warmup_epochs) == (crit, splits, branching, warm), preset
        assert (cfg.space.name, cfg.algo.name, cfg.space.width_mult, cfg.dataset.image_size) == ("ofa_mbv3", "ofa", 1.2, 224)
        ev = cfg.algo.evolution  # OFA EvolutionFinder / GM fork evolution_ws.py
        assert (ev.population, ev.iterations, ev.parent_ratio, ev.mutation_ratio, ev.mutate_prob) == (100, 500, 0.25, 0.5, 0.1)
        assert list(ev.flops_window) == [500, 600] and cfg.select.criterion.value == "val_loss"
        a = cfg.algo  # OFA upstream phases (x 8 GPUs at 64 per GPU)
        assert (a.full_epochs, a.kernel_epochs, list(a.depth_epochs), list(a.expand_epochs)) == (180, 120, [25, 120], [25, 120])
        assert (cfg.train.batch_size, cfg.train.lr, list(a.depth_lr), list(a.expand_lr)) == (512, 0.24, [0.02, 0.06], [0.02, 0.06])
        assert cfg.dataset.limit == 0 and cfg.train.max_steps_per_epoch == 0


# -- algorithm ---------------------------------------------------------------------------------

def test_leaf_phases_continue_or_restart_from_the_full_network() -> None:
    from gmnas_cli.algorithms.ofa.search import leaf_phases

    cfg = copy.deepcopy(_tiny_cfg())
    cfg.algo.kernel_epochs, cfg.algo.depth_epochs, cfg.algo.depth_lr = 5, [1, 2], [0.1, 0.2]
    cont = leaf_phases(cfg, split_epochs=2)
    assert [p.name for p in cont] == ["kernel", "depth0", "depth1", "expand0", "expand1"]
    # continue: the rest of the kernel phase, on the cosine the split phase started
    assert (cont[0].epochs, cont[0].schedule, cont[0].offset, cont[0].lr) == (3, 5, -2, cfg.train.lr)
    assert [(p.epochs, p.lr, p.offset) for p in cont[1:3]] == [(1, 0.1, 0), (2, 0.2, 0)]
    cfg.algo.leaf_start = "full"
    assert (leaf_phases(cfg, split_epochs=2)[0].epochs, leaf_phases(cfg, split_epochs=2)[0].offset) == (5, 0)


def test_kd_loss_and_phase_ranges() -> None:
    from gmnas_cli.algorithms.ofa.algorithm import Ofa, soft_cross_entropy

    sp = _space()
    cfg = _tiny_cfg()
    net = sp.build_supernet(sp.full_mask())
    algo = Ofa(cfg.algo, sp, net)
    torch.manual_seed(1)
    teacher_net = sp.build_supernet(sp.full_mask())
    algo.teacher_state = teacher_net.state_dict()
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    g = torch.Generator().manual_seed(0)
    w, active = algo.train_weights(g)
    logits, loss = algo.weight_loss(net, (x, y), w, active, None, g)
    with torch.no_grad():
        teacher_net.set_active(sp.max_subnet())
        soft = F.softmax(teacher_net.train()(x), dim=1)
    kd = float(cfg.algo.kd_ratio)
    ce = F.cross_entropy(logits, y, label_smoothing=float(cfg.algo.label_smoothing))
    assert torch.allclose(loss, (kd * soft_cross_entropy(logits, soft) + ce) * 2 / (kd + 1), atol=1e-6)
    # phases: kernel = largest e and d; depth0 = the largest 2 depths; expand1 = all ratios
    assert algo.phase_ranges()[:2] == ([6.0], [2])
    algo.phase = "depth0"
    assert algo.phase_ranges() == ([6.0], [1, 2], 2)
    algo.phase = "expand1"
    assert algo.phase_ranges() == ([3.0, 4.0, 6.0], [1, 2], 4)
    algo.phase = "full"
    assert algo.sample(g).to_json() == sp.max_subnet().to_json() and algo.teacher() is None
