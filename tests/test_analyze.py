"""`gmnas analyze`: paper Table 2 (Appendix B.2) on the smoke preset."""

from __future__ import annotations

import json

import pytest
import torch

from gmnas_cli.analysis.weight_sharing import analyze, edge_live, gradient_similarity, sample_targets
from gmnas_cli.pipeline.runtime import Runtime

from .conftest import make_cfg, run_cli

TINY = ["experiment=smoke", "space=nb201_4ops", "dataset.limit=128", "train.batch_size=16", "train.max_steps_per_epoch=2",
        "analyze.archs=2", "analyze.epochs=1", "analyze.batches=2"]


def test_analyze_pairs_targets_with_similar_and_dissimilar_partners(tmp_path):
    cfg = make_cfg(tmp_path, *TINY)
    rt = Runtime(cfg)
    res = analyze(rt)
    assert res["archs"] == 2 and len(res["targets"]) == 2
    ops = list(cfg.space.ops)
    for t in res["targets"]:
        a = rt.space.str_to_arch(t["arch"])
        assert len(t["pairs"]) == len(ops) - 1  # every other op of the changed edge is a partner
        for p in t["pairs"]:
            b = rt.space.str_to_arch(p["arch_b"])
            assert [e for e in a if a[e] != b[e]] == [t["edge"]]  # differs from A on one edge only
            assert -1.0 <= p["similarity"] <= 1.0 and p["train_loss"] > 0 and p["valid_loss"] > 0
        sims = [p["similarity"] for p in t["pairs"]]
        assert t["similar"]["similarity"] == max(sims) and t["dissimilar"]["similarity"] == min(sims)
    mean = res["mean"]["similar"]["similarity"]
    assert mean == pytest.approx(sum(t["similar"]["similarity"] for t in res["targets"]) / 2)
    saved = json.loads((tmp_path / "analyze" / "analyze.json").read_text())
    assert saved["mean"] == res["mean"]
    # a second run reuses every pair's stored result and gives the same table (same seed, CPU)
    assert analyze(Runtime(make_cfg(tmp_path, *TINY)))["mean"] == res["mean"]


def test_gradient_similarity_of_a_path_with_itself_is_one(tmp_path):
    from gmnas_cli.analysis.weight_sharing import PairSampling
    from gmnas_cli.training.trainer import SupernetTrainer

    rt = Runtime(make_cfg(tmp_path, *TINY))
    space = rt.space
    import torch

    a = space.sample_arch(space.full_mask(), torch.Generator().manual_seed(0))
    net = space.build_supernet({e: [op] for e, op in a.items()})
    algo = PairSampling(rt.cfg.algo, space, net)
    algo.pair = (a, a)
    trainer = SupernetTrainer(net, algo, rt.cfg, rt.halves, rt.device, "t")
    assert gradient_similarity(trainer, a, a, space.edges[0], 2, 0, "t") == pytest.approx(1.0, abs=1e-5)


def test_analyze_command(tmp_path):
    res = run_cli("analyze", *TINY, "analyze.archs=1", f"out_dir={tmp_path}")
    assert res.returncode == 0, res.stderr
    assert "similar: similarity=" in res.stdout and "dissimilar: similarity=" in res.stdout
    squeezed = "".join(res.stderr.split())  # the console wraps the title
    assert "Table2" in squeezed and "Dataset:" in squeezed
    assert (tmp_path / "analyze" / "analyze.json").exists()


def test_analyze_refuses_other_spaces(tmp_path):
    from gmnas_cli.infra.errors import ConfigError

    with pytest.raises(ConfigError, match="defined on NAS-Bench-201"):
        analyze(Runtime(make_cfg(tmp_path, *TINY, "space=darts")))


def test_more_similarity_batches_than_one_pass_holds(tmp_path):
    """``analyze.batches`` beyond the minibatches of the weights half cycles through new passes."""
    from gmnas_cli.analysis.weight_sharing import PairSampling
    from gmnas_cli.training.trainer import SupernetTrainer

    rt = Runtime(make_cfg(tmp_path, *TINY))
    space = rt.space
    gen = torch.Generator().manual_seed(0)
    a, b = space.sample_arch(space.full_mask(), gen), space.sample_arch(space.full_mask(), gen)
    net = space.build_supernet({e: sorted({a[e], b[e]}) for e in a})
    algo = PairSampling(rt.cfg.algo, space, net)
    algo.pair = (a, b)
    trainer = SupernetTrainer(net, algo, rt.cfg, rt.halves, rt.device, "t")
    per_pass = len(rt.halves[0]) // 16
    many = gradient_similarity(trainer, a, b, space.edges[0], 3 * per_pass + 1, 0, "t")
    assert -1.0 <= many <= 1.0
    # the first minibatches are the one-pass ones: the same first-pass mean as before cycling
    one = gradient_similarity(trainer, a, b, space.edges[0], per_pass, 0, "t")
    assert one == gradient_similarity(trainer, a, b, space.edges[0], per_pass, 0, "t")


def test_targets_never_change_a_dead_edge():
    """A dead edge (input reached only through `none`, or output feeding nothing) gives every partner
    similarity 1; such targets are redrawn."""
    dead_in = {"1<-0": "none", "2<-0": "nor_conv_3x3", "2<-1": "skip_connect", "3<-0": "skip_connect",
               "3<-1": "nor_conv_1x1", "3<-2": "nor_conv_3x3"}
    assert not edge_live(dead_in, "2<-1") and not edge_live(dead_in, "3<-1")  # node 1 unreachable
    assert edge_live(dead_in, "1<-0") and edge_live(dead_in, "3<-2")
    dead_out = {"1<-0": "skip_connect", "2<-0": "none", "2<-1": "nor_conv_3x3", "3<-0": "skip_connect",
                "3<-1": "nor_conv_1x1", "3<-2": "none"}
    assert not edge_live(dead_out, "2<-1") and not edge_live(dead_out, "2<-0")  # node 2 feeds nothing
    sp = Runtime(make_cfg("outputs", *TINY, "space=nb201")).space
    targets = sample_targets(sp, 300, torch.Generator().manual_seed(0))
    assert all(edge_live(a, e) for a, e in targets)
