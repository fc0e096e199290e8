"""space=mobilenet and algo=proxyless: structure, binary gates, MAC counts, architecture formats."""

from __future__ import annotations

import json
import math

import pytest
import torch
from omegaconf import OmegaConf

from gmnas_cli.algorithms import build_algorithm
from gmnas_cli.config.schema import AlgoConfig, SpaceConfig
from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.infra.seeding import seeded_init
from gmnas_cli.spaces import build_space
from gmnas_cli.spaces.counting import count_params, measured_macs
from gmnas_cli.spaces.mobilenet.space import PAPER_STAGES, PROXYLESS_OPS, Gated

TINY_STAGES = [[8, 2, 2], [16, 2, 1]]
# GM-NAS's released GM + ProxylessNAS architecture (skhu101/GM-NAS Imagenet_train/.../
# GM_ProxylessNAS_split_2_edge_2_3_group_subnetwork_1.config): Table 5 gives 4.9M / 530 MFLOPs.
RELEASED = ("7x7_MBConv6,5x5_MBConv6,5x5_MBConv6,5x5_MBConv6 | 7x7_MBConv6,5x5_MBConv6,3x3_MBConv6,5x5_MBConv6 | "
            "7x7_MBConv6,3x3_MBConv6,5x5_MBConv6,3x3_MBConv6 | 5x5_MBConv6,3x3_MBConv6,3x3_MBConv6,3x3_MBConv6 | "
            "7x7_MBConv6,7x7_MBConv6,7x7_MBConv6,7x7_MBConv6 | 3x3_MBConv6")


def space_cfg(stages=None, ops=None, **kw) -> SpaceConfig:
    return OmegaConf.structured(SpaceConfig(name="mobilenet", ops=list(ops or PROXYLESS_OPS),
                                            stages=stages or TINY_STAGES, stem_width=8, first_block_width=8,
                                            feature_mix_width=32, **kw))


def tiny_space(size: int = 32, num_classes: int = 5, ops=None):
    return build_space(space_cfg(ops=ops), num_classes, 3, size)


def paper_space():
    cfg = OmegaConf.structured(SpaceConfig(name="mobilenet", ops=list(PROXYLESS_OPS), stages=PAPER_STAGES))
    return build_space(cfg, 1000, 3, 224)


def count_macs(net: torch.nn.Module, size: int) -> int:
    return measured_macs(net, size)


def test_zero_only_where_a_shortcut_exists():
    space = paper_space()
    assert len(space.edges) == 21
    mask = space.full_mask()
    with_zero = [e for e in space.edges if "zero" in mask[e]]
    assert len(with_zero) == 15  # facts 1a: 15 blocks with 7 choices, 6 stage-first blocks with 6
    for e, spec in zip(space.edges, space.specs):
        assert ("zero" in mask[e]) == (spec.stride == 1 and spec.c_in == spec.c_out)


def test_full_v2_alpha_gradient_equals_relaxed_mixture_gradient():
    """Binary gates' alpha gradient = autograd through x + sum_k g_k o_k(x) with straight-through
    one-hot gates g = onehot - p.detach() + p (ProxylessNAS full_v2, on a residual block)."""
    torch.manual_seed(0)
    space = tiny_space()
    net = space.build_supernet(space.full_mask()).train()
    e = next(i for i, spec in enumerate(space.specs) if spec.residual)
    block = net.blocks[e]
    enabled = tuple(net.enabled[e])
    alpha = torch.randn(len(space.edges), len(space.ops), requires_grad=True)
    x = torch.randn(4, space.specs[e].c_in, 8, 8)
    r = torch.randn(4, space.specs[e].c_out, 8, 8)
    for sampled in [k for k in enabled if space.ops[k] != "zero"]:
        probs = torch.softmax(alpha.masked_fill(~net.mask_tensor, float("-inf")), -1)
        y = block(x, probs, e, Gated(sampled, enabled))
        (g_binary,) = torch.autograd.grad((y * r).sum(), [alpha])
        probs = torch.softmax(alpha.masked_fill(~net.mask_tensor, float("-inf")), -1)
        onehot = torch.zeros_like(probs)
        onehot[e, sampled] = 1.0
        w = onehot - probs.detach() + probs
        y2 = block(x, w, e, list(enabled))
        (g_relaxed,) = torch.autograd.grad((y2 * r).sum(), [alpha])
        assert torch.allclose(y, y2, atol=1e-5)
        assert g_binary.abs().sum() > 0
        torch.testing.assert_close(g_binary, g_relaxed, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("ops", [PROXYLESS_OPS, PROXYLESS_OPS[::-1]], ids=["paper order", "zero first"])
def test_proxyless_arch_step_updates_alpha_inside_the_mask(ops):
    torch.manual_seed(0)
    space = tiny_space(ops=ops)
    mask = space.full_mask()
    mask["b2"] = ["3x3_MBConv3", "zero"]
    net = space.build_supernet(mask).train()
    cfg = OmegaConf.structured(AlgoConfig(name="proxyless", arch_lr=1e-2, arch_betas=[0.0, 0.999],
                                          arch_weight_decay=0.0, arch_every=5))
    algo = build_algorithm(cfg, space, net)
    gen = torch.Generator().manual_seed(1)
    batch = (torch.randn(8, 3, 32, 32), torch.randint(0, 5, (8,)))
    loss_fn = torch.nn.functional.cross_entropy
    for _ in range(3):
        algo.arch_step(batch, batch, loss_fn, None, gen)
    moved = (algo.alpha.detach() != 0)
    assert moved.any()
    assert not (moved & ~net.mask_tensor).any()  # disabled ops never get a gradient
    for _ in range(20):
        w, active = algo.train_weights(gen)
        assert all(space.ops[a.sampled] in mask[e] for e, a in zip(space.edges, active))
    assert space.arch_in_mask(algo.derive(), mask)
    assert not algo.arch_step_due(0, 5, 10) and algo.arch_step_due(1, 0, 10) and not algo.arch_step_due(1, 1, 10)


def test_single_path_computes_the_chosen_op_with_any_op_order():
    torch.manual_seed(0)
    space = tiny_space(ops=PROXYLESS_OPS[::-1])  # zero first: b1 (stride 2) has no zero column
    net = space.build_supernet(space.full_mask()).eval()
    k = space.ops.index("5x5_MBConv6")
    w = torch.zeros(len(space.edges), len(space.ops))
    w[0, k] = 1.0
    x = torch.randn(2, 8, 16, 16)
    torch.testing.assert_close(net.blocks[0](x, w, 0, [k]), net.blocks[0].ops["5_5_MBConv6"](x))
    torch.testing.assert_close(net.blocks[0](x, w, 0, Gated(k, (k,))), net.blocks[0].ops["5_5_MBConv6"](x))


def test_flops_regulariser_is_differentiable():
    torch.manual_seed(0)
    space = tiny_space()
    net = space.build_supernet(space.full_mask()).train()
    cfg = OmegaConf.structured(AlgoConfig(name="proxyless", target="flops", target_ref=1.0, reg_form="add#linear"))
    algo = build_algorithm(cfg, space, net)
    probs = algo.probabilities()
    ce = torch.tensor(1.0)
    loss = algo.regularised(ce, probs)
    (g,) = torch.autograd.grad(loss, [algo.alpha])
    # add#linear: the cheapest op of a block gains probability, the most expensive loses it
    row = g[0]
    costs = space.op_macs()[0]
    assert row[int(costs[: len(space.ops)].argmax())] > 0


def test_analytic_macs_equal_flop_counter_halved():
    space = tiny_space()
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        arch = space.sample_arch(space.full_mask(), gen)
        net = space.build_network(arch, None, 5, 3)
        assert space.arch_macs(arch) == count_macs(net, 32)


def test_paper_size_macs_and_params():
    space = paper_space()
    all_k3e3 = {e: "3x3_MBConv3" for e in space.edges}
    # documented in docs/mobilenet.md: 257.42 MFLOPs (MACs) at 224 with every block 3x3_MBConv3
    assert space.arch_macs(all_k3e3) == 257_422_208
    arch = space.str_to_arch(RELEASED)
    net = space.build_network(arch, None, 1000, 3)
    assert space.arch_macs(arch) == 529_670_912  # Table 5: 530 MFLOPs (facts 1b: 529.67 verified with ofa)
    assert count_params(net) == 4_895_208  # Table 5: 4.9M
    assert count_macs(net, 224) == 529_670_912


def test_arch_string_and_net_config_round_trip():
    space = tiny_space()
    arch = space.sample_arch(space.full_mask(), torch.Generator().manual_seed(3))
    config = space.arch_to_config(arch)
    assert space.str_to_arch(json.dumps(config)) == arch
    net = space.build_network(arch, None, 5, 3)
    assert net.config == config
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 5)


def test_bad_architecture_strings_name_the_token():
    space = tiny_space()
    text = space.arch_to_str({e: "3x3_MBConv3" for e in space.edges})
    with pytest.raises(ConfigError, match="token 2 '9x9_MBConv9'"):
        space.str_to_arch(text.replace("3x3_MBConv3", "9x9_MBConv9").replace("9x9_MBConv9", "3x3_MBConv3", 1))
    with pytest.raises(ConfigError, match="zero is unavailable on block b1"):
        space.str_to_arch(text.replace("3x3_MBConv3", "zero", 1))


def test_bad_space_settings():
    with pytest.raises(ConfigError, match="unknown MobileNet op '4x4_MBConv3'"):
        build_space(OmegaConf.structured(SpaceConfig(name="mobilenet", ops=["4x4_MBConv3"], stages=TINY_STAGES)), 5, 3)
    with pytest.raises(ConfigError, match=r"space.stages\[1\]"):
        build_space(space_cfg(stages=[[8, 1, 2], [8, 1, 3]]), 5, 3)
    with pytest.raises(ConfigError, match="space.stages=.*no effect on space 'nb201'"):
        build_space(OmegaConf.structured(SpaceConfig(name="nb201", ops=["none"], stages=TINY_STAGES)), 5, 3)


def test_latency_table_costs_and_missing_key(tmp_path):
    """A synthetic LUT in ProxylessNAS's key layout (the real one has no 32 px keys)."""
    import yaml

    from gmnas_cli.algorithms.latency import latency_costs, lut_key
    from gmnas_cli.spaces.mobilenet.space import parse_op

    space = tiny_space()
    sizes, final = space.block_sizes()
    lut = {lut_key("Conv", (32, 32, 3), (16, 16, 8)): {"mean": 1.0},
           lut_key("expanded_conv", (16, 16, 8), (16, 16, 8), 1, 3, 1, 0): {"mean": 2.0},
           lut_key("Conv_1", (final, final, 16), (final, final, 32)): {"mean": 3.0},
           lut_key("Logits", (final, final, 32), (5,)): {"mean": 4.0}}
    for spec, size in zip(space.specs, sizes):
        out = (size - 1) // spec.stride + 1
        for o in space.ops:
            if o != "zero":
                k, e = parse_op(o)
                key = lut_key("expanded_conv", (size, size, spec.c_in), (out, out, spec.c_out), e, k, spec.stride,
                              int(spec.residual))
                lut[key] = {"mean": 0.1 * k + e}
    path = tmp_path / "lut.yaml"
    path.write_text(yaml.safe_dump(lut))
    fixed, costs = latency_costs(space, path)
    assert fixed == 10.0
    assert costs[0, space.ops.index("7x7_MBConv6")] == pytest.approx(6.7)
    assert costs[1, space.ops.index("zero")] == 0
    del lut[lut_key("Conv", (32, 32, 3), (16, 16, 8))]
    path.write_text(yaml.safe_dump(lut))
    with pytest.raises(ConfigError, match="has no entry 'Conv-input:32x32x3-output:16x16x8'"):
        latency_costs(space, path)


def test_retrain_linear_warmup_then_cosine(cfg_factory):
    from gmnas_cli.training.retrain import NetworkTrainer

    cfg = cfg_factory("space=mobilenet", "retrain.epochs=10", "retrain.warmup_epochs=2", "retrain.lr=0.1")
    assert cfg.retrain.weight_decay == 5e-5 and cfg.retrain.epochs == 10  # retrain=proxyless_imagenet
    trainer = NetworkTrainer(torch.nn.Linear(2, 2), cfg, None, torch.device("cpu"), "t", 10)
    lrs = [trainer.lr_at(e) for e in range(10)]
    assert lrs[:3] == [0.05, 0.1, 0.1]  # (e + 1) / warmup, then the cosine from its start
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:]))


# -- upstream details: init, dropout, net.config and stage checks ------------------------------

def _conv_std_ratio(net: torch.nn.Module) -> float:
    """Std of every conv weight divided by he_fout's sqrt(2 / (k * k * out)), pooled."""
    parts = [m.weight.detach().flatten() / math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels))
             for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    return float(torch.cat(parts).std())


def test_weight_init_is_upstream_he_fout_from_the_derived_seed():
    """ProxylessNAS/OFA ``init_model('he_fout')``: conv N(0, 2/(k k out)) (depthwise included), BN 1/0,
    linear bias 0 and U(+-1/sqrt(in)); the same purpose-derived seed gives the same weights."""
    space = paper_space()
    arch = space.str_to_arch(RELEASED)
    with seeded_init(0, "retrain", "init"):
        net = space.build_network(arch, None, 1000, 3)
    assert abs(_conv_std_ratio(net) - 1.0) < 0.01
    dw = net.blocks[0].conv.depth_conv[0]  # a depthwise conv: not divided by its groups
    assert abs(float(dw.weight.detach().std()) - math.sqrt(2.0 / (dw.kernel_size[0] ** 2 * dw.out_channels))) < 0.002
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert torch.equal(m.weight, torch.ones_like(m.weight)) and not m.bias.any()
    lin = net.classifier.linear
    assert not lin.bias.any() and float(lin.weight.detach().abs().max()) <= 1.0 / math.sqrt(lin.in_features)
    with seeded_init(0, "retrain", "init"):
        again = space.build_network(arch, None, 1000, 3)
    with seeded_init(1, "retrain", "init"):
        other = space.build_network(arch, None, 1000, 3)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values()))
    assert not torch.equal(net.first_conv[0].weight, other.first_conv[0].weight)
    supernet = tiny_space().build_supernet(tiny_space().full_mask())
    assert abs(_conv_std_ratio(supernet) - 1.0) < 0.1  # the supernet too (few weights: looser)


def test_retrain_dropout_from_the_official_retrain(cfg_factory):
    cfg = cfg_factory("space=mobilenet")
    assert cfg.retrain.dropout == 0.2  # skhu101/GM-NAS Imagenet_train/distributed_train.sh --drop 0.2
    space = tiny_space()
    arch = {e: "3x3_MBConv3" for e in space.edges}
    net = space.build_network(arch, cfg.retrain, 5, 3)
    assert isinstance(net.classifier.dropout, torch.nn.Dropout) and net.classifier.dropout.p == 0.2
    assert net.config["classifier"]["dropout_rate"] == 0.2


@pytest.mark.parametrize("part, key, value", [("first_conv", "out_channels", 16), ("first_conv", "stride", 1),
                                              ("feature_mix_layer", "in_channels", 8),
                                              ("feature_mix_layer", "out_channels", 64)])
def test_net_config_checks_the_fixed_layers(part, key, value):
    space = tiny_space()
    config = space.arch_to_config({e: "3x3_MBConv3" for e in space.edges})
    config[part][key] = value
    with pytest.raises(ConfigError, match=f"net.config {part}"):
        space.config_to_arch(config)
    config = space.arch_to_config({e: "3x3_MBConv3" for e in space.edges})
    config["blocks"][0]["mobile_inverted_conv"]["out_channels"] = 16
    with pytest.raises(ConfigError, match=r"net.config blocks\[0\]"):
        space.config_to_arch(config)


def test_stage_separators_must_match_the_stages():
    space = tiny_space()  # stages of 2 and 2 blocks
    arch = {e: "3x3_MBConv3" for e in space.edges}
    assert space.str_to_arch(space.arch_to_str(arch)) == arch
    assert space.str_to_arch(space.arch_to_str(arch).replace(" | ", ",")) == arch  # no separators: a flat list
    with pytest.raises(ConfigError, match=r"token 3 '5x5_MBConv3' \(block b3\) is in stage 1 of the string"):
        space.str_to_arch("3x3_MBConv3,3x3_MBConv3,5x5_MBConv3 | 3x3_MBConv3")
    with pytest.raises(ConfigError, match="token 2 '5x5_MBConv6'"):
        space.str_to_arch("3x3_MBConv3 | 5x5_MBConv6,3x3_MBConv3,3x3_MBConv3")

