"""Cross-checks against the ``ofa`` package (mit-han-lab/once-for-all, MIT) as a test-only oracle.

``ofa`` is never a runtime dependency. These tests run only where it is importable:
``pip install --no-deps --target /tmp/ofa_oracle ofa==0.1.0.post202307202001 tqdm`` and
``PYTHONPATH=/tmp/ofa_oracle pytest tests/test_ofa_oracle.py``. With the same weights, our elastic
MobileNetV3 and OFA's ``OFAMobileNetV3`` give the same logits for the same ``{ks, e, d}``, and our
analytic MACs equal OFA's ``count_net_flops`` of its extracted subnet.
"""

from __future__ import annotations

import re

import pytest
import torch

from gmnas_cli.spaces import build_space
from gmnas_cli.spaces.ofa.macs import subnet_macs
from gmnas_cli.spaces.ofa.space import Subnet

from .conftest import make_cfg

ofa_net = pytest.importorskip("ofa.imagenet_classification.elastic_nn.networks")
ofa_utils = pytest.importorskip("ofa.utils")

_RULES = [  # our name -> OFA's name
    (r"^first_conv\.0\.", "first_conv.conv."), (r"^first_conv\.1\.", "first_conv.bn."),
    (r"^first_block\.depthwise\.0\.", "blocks.0.conv.depth_conv.conv."),
    (r"^first_block\.depthwise\.1\.", "blocks.0.conv.depth_conv.bn."),
    (r"^first_block\.project\.0\.", "blocks.0.conv.point_linear.conv."),
    (r"^first_block\.project\.1\.", "blocks.0.conv.point_linear.bn."),
    (r"\.expand_conv\.", ".conv.inverted_bottleneck.conv.conv."), (r"\.expand_bn\.bn\.", ".conv.inverted_bottleneck.bn.bn."),
    (r"\.depthwise\.conv\.", ".conv.depth_conv.conv.conv."), (r"\.depthwise\.transforms\.(\w+)$", r".conv.depth_conv.conv.\1_matrix"),
    (r"\.depthwise_bn\.bn\.", ".conv.depth_conv.bn.bn."), (r"\.se\.(reduce|expand)\.", r".conv.depth_conv.se.fc.\1."),
    (r"\.project\.weight$", ".conv.point_linear.conv.conv.weight"), (r"\.project_bn\.", ".conv.point_linear.bn.bn."),
    (r"^final_expand\.0\.", "final_expand_layer.conv."), (r"^final_expand\.1\.", "final_expand_layer.bn."),
    (r"^feature_mix\.0\.", "feature_mix_layer.conv."), (r"^classifier\.", "classifier.linear."),
]


def _pair(width_mult: float):
    cfg = make_cfg("outputs", "space=ofa_mbv3", "algo=ofa", f"space.width_mult={width_mult}")
    sp = build_space(cfg.space, 10, 3)
    ours = sp.build_supernet(sp.full_mask())
    theirs = ofa_net.OFAMobileNetV3(n_classes=10, width_mult=width_mult, ks_list=[3, 5, 7],
                                     expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4], dropout_rate=0)
    g = torch.Generator().manual_seed(0)
    src = {k: (torch.rand(v.shape, generator=g) - 0.5) * 0.5 if v.dtype.is_floating_point else v
           for k, v in ours.state_dict().items()}
    src = {k: v.abs() + 0.5 if "running_var" in k else v for k, v in src.items()}
    ours.load_state_dict(src)
    mapped = {}
    for k, v in src.items():
        name = re.sub(r"^blocks\.(\d+)\.", lambda m: f"blocks.{int(m.group(1)) + 1}.", k)
        for pat, rep in _RULES:
            name = re.sub(pat, rep, name)
        mapped[name] = v
    theirs.load_state_dict(mapped)
    return sp, ours.eval(), theirs.eval()


@pytest.mark.parametrize("width_mult", [1.0, 1.2])
def test_same_logits_and_macs_as_ofa(width_mult: float) -> None:
    sp, ours, theirs = _pair(width_mult)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 64, 64)
    for _ in range(4):
        sub = sp.sample_subnet(sp.full_mask(), g, sp.expand_ratios, sp.depths)
        ours.set_active(sub)
        theirs.set_active_subnet(ks=sub.ks, e=[int(e) for e in sub.e], d=sub.d)
        with torch.no_grad():
            a, b = ours(x, None, ours.active_for(sub)), theirs(x)
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
        static = theirs.get_active_subnet(preserve_weight=True)
        theirs_macs = ofa_utils.count_net_flops(static, (1, 3, 224, 224))
        # OFA's profiler sums per-layer counts in float32 tensors (rounding above 2**24): 1e-6 relative.
        assert abs(subnet_macs(sp, sub, 224) - theirs_macs) <= 1e-6 * theirs_macs
    assert isinstance(sub, Subnet)


@pytest.mark.parametrize("stage", [0, 1])
def test_channel_sorting_equals_ofa(stage: int) -> None:
    """``reorganize_middle`` = OFA ``re_organize_middle_weights`` (expand stages 0 and 1)."""
    sp, ours, theirs = _pair(1.0)
    for block in ours.blocks:
        block.reorganize_middle(stage)
    theirs.re_organize_middle_weights(expand_ratio_stage=stage)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 64, 64)
    for _ in range(3):
        sub = sp.sample_subnet(sp.full_mask(), g, sp.expand_ratios, sp.depths)
        ours.set_active(sub)
        theirs.set_active_subnet(ks=sub.ks, e=[int(e) for e in sub.e], d=sub.d)
        with torch.no_grad():
            assert torch.allclose(ours(x, None, ours.active_for(sub)), theirs(x), atol=1e-4, rtol=1e-4)
