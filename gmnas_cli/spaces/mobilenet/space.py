"""The ProxylessNAS MobileNet space (Cai et al. 2019) as used by GM-NAS (paper 4.3, App. D.3).

Supernet (ProxylessNAS ``super_proxyless.py``; docs/mobilenet.md): a 3x3 stride-2
``ConvLayer`` to ``space.stem_width`` (32), a fixed first block 3x3_MBConv1 to
``space.first_block_width`` (16), then the searchable blocks of ``space.stages`` (``[width,
blocks, stride]`` per stage; paper: widths 24,40,80,96,192,320, blocks 4,4,4,4,4,1, strides
2,2,2,1,2,1, i.e. 21 blocks), a 1x1 feature mix to ``space.feature_mix_width`` (1280) and a
linear classifier. Widths are ``make_divisible(w * space.width_mult, 8)`` (the feature mix only
grows for ``width_mult > 1``, as upstream). Input size = ``dataset.image_size``.

Edges are the searchable blocks ``b1 .. b21`` (``b0`` is the fixed block). Ops are
``{k}x{k}_MBConv{e}`` (kernel k, expand ratio e; every op of every block has its own weights)
and ``zero``: the block reduces to its identity shortcut. A block has a shortcut only when its
stride is 1 and its input and output widths are equal, so ``zero`` is structurally unavailable
elsewhere: ``full_mask`` leaves it out there (15 of the 21 paper blocks offer 7 ops, 6 offer 6).

A block computes ``x + sum_k w_k * o_k(x)`` (no ``x`` term without a shortcut; ``o_zero = 0``),
over the active ops only. An active entry of type ``Gated`` selects ProxylessNAS's binary gates
(``full_v2``): only the sampled op runs forward; backward recomputes the other enabled ops on the
saved input and gives ``dL/dw_k = <o_k(x), dL/dy>`` (``mobilenet_ops._GateGrad``).
"""

from __future__ import annotations

import json
from typing import Any

import torch
from torch import nn

from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.spaces.base import SPACES, Active, Arch, Mask, NaturalInput, SearchSpace, Supernet
from gmnas_cli.spaces.counting import count_params
from gmnas_cli.spaces.mbconv.layers import (
    BN_EPS,
    BN_MOMENTUM,
    Classifier,
    MBConv,
    he_fout_init,
    identity_config,
    make_divisible,
    mbconv_macs,
    proxyless_conv,
    zero_layer_config,
)
from gmnas_cli.spaces.mobilenet.network import MobileNetNetwork
from gmnas_cli.spaces.mobilenet.ops import (  # noqa: F401  (re-exported)
    PROXYLESS_OPS,
    ZERO,
    BlockSpec,
    Gated,
    MixedBlock,
    op_name,
    parse_op,
)

PAPER_STAGES = [[24, 4, 2], [40, 4, 2], [80, 4, 2], [96, 4, 1], [192, 4, 2], [320, 1, 1]]  # super_proxyless.py


def stage_list(cfg: Any) -> list[tuple[int, int, int]]:
    """``space.stages`` as (width, blocks, stride) triples; ConfigError names a bad entry."""
    stages = list(cfg.stages)
    if not stages:
        raise ConfigError("space.stages: the MobileNet space needs at least one stage [width, blocks, stride]")
    out = []
    for i, st in enumerate(stages):
        items = list(st) if isinstance(st, (list, tuple)) or hasattr(st, "__iter__") and not isinstance(st, str) else []
        if len(items) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) for v in items) \
                or items[0] < 1 or items[1] < 1 or items[2] not in (1, 2):
            raise ConfigError(f"space.stages[{i}]={st!r}: expected [width >= 1, blocks >= 1, stride 1 or 2]")
        out.append((int(items[0]), int(items[1]), int(items[2])))
    return out


class MobileNetSupernet(Supernet):
    def __init__(self, space: MobileNetSpace, mask: Mask) -> None:
        super().__init__(space, mask)
        self.first_conv = proxyless_conv(space.in_channels, space.stem, 3, 2)
        self.first_block = MBConv.proxyless(space.stem, space.first, 3, 1, 1)
        # Indexed by the space's op list; an unavailable `zero` has no module and no mask enables it.
        self.blocks = nn.ModuleList([MixedBlock(spec, space.ops) for spec in space.specs])
        self.feature_mix = proxyless_conv(space.last_width, space.mix, 1, 1)
        self.classifier = Classifier(space.mix, space.num_classes)
        he_fout_init(self)  # ProxylessNAS model_init='he_fout'

    def forward(self, x: torch.Tensor, weights: torch.Tensor, active: Active | None = None) -> torch.Tensor:
        active = self.enabled if active is None else active
        h = self.first_block(self.first_conv(x))
        for i, block in enumerate(self.blocks):
            h = block(h, weights, i, active[i])
        return self.classifier(self.feature_mix(h))


@SPACES.register("mobilenet", keys=("width_mult", "stages", "stem_width", "first_block_width",
                                    "feature_mix_width"))
class MobileNetSpace(SearchSpace):
    """Searchable MobileNetV2 blocks (ProxylessNAS); see the module docstring."""

    name = "mobilenet"
    report_table = "mobilenet"  # paper Table 5
    natural_input = NaturalInput(224, 3, 1000)  # ImageNet (ProxylessNAS, paper 4.3)
    retrain_keys = ("dropout",)  # dropout before the classifier (ProxylessNAS LinearLayer dropout_rate)

    # -- structure --------------------------------------------------------------------------
    def edge_names(self) -> list[str]:
        cfg = self.cfg
        for o in self.ops:
            parse_op(o)
        if len(set(self.ops)) != len(self.ops):
            raise ConfigError(f"space.ops lists an op twice: {list(self.ops)}")
        if all(o == ZERO for o in self.ops):
            raise ConfigError("space.ops needs at least one MBConv op besides zero")
        mult = float(cfg.width_mult)
        if not mult > 0:
            raise ConfigError(f"space.width_mult={mult} must be > 0")
        self.stem = make_divisible(int(cfg.stem_width) * mult)
        self.first = make_divisible(int(cfg.first_block_width) * mult)
        mix = int(cfg.feature_mix_width)
        self.mix = make_divisible(mix * mult) if mult > 1.0 else mix  # upstream: grows only for w > 1
        specs: list[BlockSpec] = []
        c_in = self.first
        for width, blocks, stride in stage_list(cfg):
            c_out = make_divisible(width * mult)
            for j in range(blocks):
                specs.append(BlockSpec(c_in, c_out, stride if j == 0 else 1))
                c_in = c_out
        self.specs = specs
        self.last_width = c_in
        edges = [f"b{i + 1}" for i in range(len(specs))]
        # Per block, its structurally available ops in space order (`zero` only with a shortcut).
        self.available = {e: [o for o in self.ops if o != ZERO or spec.residual] for e, spec in zip(edges, specs)}
        return edges

    def full_mask(self) -> Mask:
        return {e: list(self.available[e]) for e in self.edges}

    def check_mask(self, mask: Mask) -> None:
        """ConfigError when a mask enables an op a block cannot have (``zero`` without shortcut)."""
        for e in self.edges:
            for o in mask[e]:
                if o not in self.available[e]:
                    spec = self.specs[self.edges.index(e)]
                    raise ConfigError(f"block {e}: op {o!r} is unavailable there (stride {spec.stride}, "
                                      f"{spec.c_in} -> {spec.c_out} channels: no identity shortcut)")

    def build_supernet(self, mask: Mask) -> MobileNetSupernet:
        self.check_mask(mask)
        return MobileNetSupernet(self, mask)

    def shared_parameters(self, net: Supernet, edge: str) -> list[nn.Parameter]:
        """First conv, block 0, every other block's ops, feature mix, classifier (facts 1a).

        Upstream takes only the sampled op of every other block; ops off the sampled path get no
        gradient (``None``: left out), so listing all of them gives the same vector entries."""
        k = self.edges.index(edge)
        params = list(net.first_conv.parameters()) + list(net.first_block.parameters())
        for i, block in enumerate(net.blocks):
            if i != k:
                params += list(block.parameters())
        return params + list(net.feature_mix.parameters()) + list(net.classifier.parameters())

    # -- architectures ----------------------------------------------------------------------
    def derive(self, weights: torch.Tensor, mask: Mask) -> Arch:
        """Per block, the enabled op of largest weight (ProxylessNAS: masked argmax of alpha)."""
        w = weights.detach().float().cpu().masked_fill(~self.mask_tensor(mask), float("-inf"))
        return {e: self.ops[int(w[i].argmax())] for i, e in enumerate(self.edges)}

    def sample_arch(self, mask: Mask, gen: torch.Generator) -> Arch:
        return {e: mask[e][int(torch.randint(len(mask[e]), (1,), generator=gen))] for e in self.edges}

    def stage_sizes(self) -> list[int]:
        return [n for _, n, _ in stage_list(self.cfg)]

    def arch_to_str(self, arch: Arch) -> str:
        """Ops of b1.. in order, ``,`` within a stage and `` | `` between stages."""
        out, i = [], 0
        for n in self.stage_sizes():
            out.append(",".join(arch[e] for e in self.edges[i : i + n]))
            i += n
        return " | ".join(out)

    def str_to_arch(self, text: str) -> Arch:
        """Parse ``arch_to_str``'s form or a ProxylessNAS ``net.config`` JSON text."""
        text = text.strip()
        if text.startswith("{"):
            try:
                return self.config_to_arch(json.loads(text))
            except json.JSONDecodeError as err:
                raise ConfigError(f"MobileNet architecture: not valid net.config JSON ({err})") from None
        tokens, stage_of = [], []  # every token and the stage its position in the string gives it
        for s, group in enumerate(text.split("|")):
            for t in group.split(","):
                tokens.append(t.strip())
                stage_of.append(s)
        if "|" in text:  # stages marked: each `|` must close a stage of the space (arch_to_str's form)
            true_stage = [s for s, n in enumerate(self.stage_sizes()) for _ in range(n)]
            for i, (tok, s) in enumerate(zip(tokens, stage_of)):
                want = true_stage[i] if i < len(true_stage) else None
                if want is not None and s != want:
                    raise ConfigError(f"MobileNet architecture: token {i + 1} {tok!r} (block {self.edges[i]}) is in "
                                      f"stage {s + 1} of the string but block {self.edges[i]} is in stage {want + 1}; "
                                      f"stages have {self.stage_sizes()} blocks")
        arch: Arch = {}
        for i, tok in enumerate(tokens):
            if i >= len(self.edges):
                raise ConfigError(f"MobileNet architecture: token {i + 1} {tok!r} is beyond the {len(self.edges)} "
                                  f"searchable blocks")
            if tok not in self.ops:
                raise ConfigError(f"MobileNet architecture: token {i + 1} {tok!r} (block {self.edges[i]}) is not "
                                  f"an op of this space; valid: {', '.join(self.ops)}")
            if tok not in self.available[self.edges[i]]:
                raise ConfigError(f"MobileNet architecture: token {i + 1} {tok!r}: zero is unavailable on block "
                                  f"{self.edges[i]} (stride {self.specs[i].stride}, {self.specs[i].c_in} -> "
                                  f"{self.specs[i].c_out} channels)")
            arch[self.edges[i]] = tok
        if len(arch) != len(self.edges):
            raise ConfigError(f"MobileNet architecture: {len(arch)} ops for {len(self.edges)} searchable blocks")
        return arch

    def arch_to_config(self, arch: Arch, num_classes: int | None = None, dropout: float = 0.0) -> dict[str, Any]:
        """ProxylessNAS's ``net.config`` JSON of ``arch`` (docs/mobilenet.md)."""
        first = proxyless_conv(self.in_channels, self.stem, 3, 2).config()
        blocks = [{"name": "MobileInvertedResidualBlock",
                   "mobile_inverted_conv": {**MBConv.proxyless(self.stem, self.first, 3, 1, 1).config(), "mid_channels": None},
                   "shortcut": None}]
        for e, spec in zip(self.edges, self.specs):
            parsed = parse_op(arch[e])
            conv = zero_layer_config(spec.stride) if parsed is None else {
                **MBConv.proxyless(spec.c_in, spec.c_out, parsed[0], spec.stride, parsed[1]).config(), "mid_channels": None}
            blocks.append({"name": "MobileInvertedResidualBlock", "mobile_inverted_conv": conv,
                           "shortcut": identity_config(spec.c_in) if spec.residual else None})
        return {"name": "ProxylessNASNets", "bn": {"momentum": BN_MOMENTUM, "eps": BN_EPS}, "first_conv": first,
                "blocks": blocks, "feature_mix_layer": proxyless_conv(self.last_width, self.mix, 1, 1).config(),
                "classifier": Classifier(self.mix, num_classes or self.num_classes, dropout).config()}

    def _check_fixed_layers(self, config: dict[str, Any]) -> None:
        """ConfigError when the first conv, the fixed first block or the feature mix of a ``net.config``
        has other widths (or kernel, stride) than this space's."""
        first = proxyless_conv(self.in_channels, self.stem, 3, 2).config()
        mix = proxyless_conv(self.last_width, self.mix, 1, 1).config()
        block0 = MBConv.proxyless(self.stem, self.first, 3, 1, 1).config()
        blocks = config.get("blocks")
        conv0 = blocks[0].get("mobile_inverted_conv") if isinstance(blocks[0], dict) else None
        for part, got, want in (("first_conv", config.get("first_conv"), first), ("blocks[0]", conv0, block0),
                                ("feature_mix_layer", config.get("feature_mix_layer"), mix)):
            keys = ("in_channels", "out_channels", "kernel_size", "stride")
            have = tuple(got.get(k) for k in keys) if isinstance(got, dict) else None
            if have != tuple(want[k] for k in keys):
                shown = "missing" if have is None else f"{have[0]} -> {have[1]} channels, kernel {have[2]}, stride {have[3]}"
                raise ConfigError(f"net.config {part}: {shown}; this space has {want['in_channels']} -> "
                                  f"{want['out_channels']}, kernel {want['kernel_size']}, stride {want['stride']} "
                                  f"(space.stem_width, first_block_width, feature_mix_width, width_mult)")

    def config_to_arch(self, config: dict[str, Any]) -> Arch:
        """The op list of a ``net.config`` whose widths and strides are this space's (the first conv,
        the fixed first block and the feature mix included)."""
        blocks = config.get("blocks") if isinstance(config, dict) else None
        if not isinstance(blocks, list) or len(blocks) != len(self.edges) + 1:
            raise ConfigError(f"net.config: expected {len(self.edges) + 1} blocks (the fixed first block and "
                              f"{len(self.edges)} searchable ones), got {len(blocks) if isinstance(blocks, list) else 0}")
        self._check_fixed_layers(config)
        arch: Arch = {}
        for i, (e, spec) in enumerate(zip(self.edges, self.specs), start=1):
            conv = blocks[i].get("mobile_inverted_conv", {}) if isinstance(blocks[i], dict) else {}
            if conv.get("name") == "ZeroLayer":
                name = ZERO
            elif conv.get("name") == "MBInvertedConvLayer":
                if (conv.get("in_channels"), conv.get("out_channels"), conv.get("stride")) != \
                        (spec.c_in, spec.c_out, spec.stride):
                    raise ConfigError(f"net.config block {i}: {conv.get('in_channels')} -> {conv.get('out_channels')} "
                                      f"channels, stride {conv.get('stride')}; this space has {spec.c_in} -> "
                                      f"{spec.c_out}, stride {spec.stride}")
                name = op_name(int(conv.get("kernel_size", 0)), int(conv.get("expand_ratio", 0)))
            else:
                raise ConfigError(f"net.config block {i}: unknown layer {conv.get('name')!r}")
            if name not in self.available[e]:
                raise ConfigError(f"net.config block {i}: op {name!r} is not available on block {e} "
                                  f"(valid: {', '.join(self.available[e])})")
            arch[e] = name
        return arch

    # -- costs ------------------------------------------------------------------------------
    def block_sizes(self, image_size: int | None = None) -> tuple[list[int], int]:
        """Input map size of every searchable block and the final map size."""
        size = (int(image_size or self.input_size) - 1) // 2 + 1  # after the stride-2 first conv
        sizes = []
        for spec in self.specs:
            sizes.append(size)
            size = (size - 1) // spec.stride + 1
        return sizes, size

    def fixed_macs(self, image_size: int | None = None, num_classes: int | None = None) -> int:
        """MACs outside the searchable blocks: first conv, block 0, feature mix, classifier."""
        size = int(image_size or self.input_size)
        first = proxyless_conv(self.in_channels, self.stem, 3, 2)
        _, final = self.block_sizes(size)
        return (first.macs(size) + mbconv_macs(self.stem, self.stem, self.first, 3, 1, first.out_size(size), expand=False)
                + proxyless_conv(self.last_width, self.mix, 1, 1).macs(final) + self.mix * (num_classes or self.num_classes))

    def op_macs(self, image_size: int | None = None) -> torch.Tensor:
        """``[num_edges, num_ops]`` MACs of each op on each block (0: zero or unavailable)."""
        sizes, _ = self.block_sizes(image_size)
        table = torch.zeros(len(self.edges), len(self.ops), dtype=torch.float64)
        for i, (spec, size) in enumerate(zip(self.specs, sizes)):
            for j, o in enumerate(self.ops):
                parsed = parse_op(o)
                if parsed is not None:
                    k, e = parsed  # MBInvertedConvLayer: middle width round(in * e), no expand conv at e = 1
                    mid = round(spec.c_in * e)
                    table[i, j] = mbconv_macs(spec.c_in, mid, spec.c_out, k, spec.stride, size, e != 1)
        return table

    def arch_macs(self, arch: Arch, image_size: int | None = None, num_classes: int | None = None) -> int:
        """Analytic multiply-accumulates of ``arch`` (the paper's "MFLOPs" are these / 1e6)."""
        table = self.op_macs(image_size)
        blocks = sum(int(table[i, self.ops.index(arch[e])]) for i, e in enumerate(self.edges))
        return self.fixed_macs(image_size, num_classes) + blocks

    def arch_files(self, arch: Arch) -> dict[str, Any]:
        return {"net.config": self.arch_to_config(arch)}

    def arch_metrics(self, arch: Arch) -> dict[str, float]:
        """Parameters (M) of the stand-alone network and MFLOPs (MACs / 1e6) at the input size."""
        with torch.device("meta"):  # counts without allocating memory or drawing random numbers
            net = MobileNetNetwork(self, arch, self.num_classes)
        params = count_params(net)
        return {"params_m": round(params / 1e6, 6), "mflops": round(self.arch_macs(arch) / 1e6, 4)}

    # -- evaluation -------------------------------------------------------------------------
    def network_summary(self, retrain_cfg: Any, num_classes: int) -> str:
        blocks = sum(int(st[1]) for st in self.cfg.stages)
        return (f"ProxylessNAS MobileNet: width_mult {float(self.cfg.width_mult):g}, first conv {self.stem}, "
                f"{blocks + 1} blocks, feature mix {self.mix}, {num_classes} classes")

    def build_network(self, arch: Arch, retrain_cfg: Any, num_classes: int, in_channels: int) -> nn.Module:
        """The stand-alone ProxylessNAS network of ``arch`` (``retrain.dropout`` before the classifier)."""
        space = self if in_channels == self.in_channels else MobileNetSpace(self.cfg, num_classes, in_channels)
        space.check_mask({e: [arch[e]] for e in space.edges})
        return MobileNetNetwork(space, arch, num_classes, float(retrain_cfg.dropout) if retrain_cfg is not None else 0.0)
