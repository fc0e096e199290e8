"""``space=ofa_mbv3``: the elastic MobileNetV3 of Once-for-All (Cai et al. 2020; OFA
``OFAMobileNetV3``) as edges x ops for GM-NAS (paper 4.3, App. D.3; docs/ofa.md).

- Structure (OFA): first conv 3x3 s2 (h_swish) -> a fixed first block (3x3 MBConv1, relu) ->
  ``len(space.stages)`` stages of ``max(space.depths)`` dynamic blocks -> final 1x1 expand ->
  global pool -> 1x1 feature mix (no BN) -> linear classifier. Widths are scaled by
  ``space.width_mult`` with ``make_divisible(w * mult, 8)``.
- Edges ``b1..bN`` = the dynamic blocks in order (OFA ``blocks[1..20]``; block 0 is fixed).
  Ops = kernel sizes ``k3, k5, k7`` (the official GM fork splits kernel sizes only).
- Expand ratio (``space.expand_ratios``) and depth (``space.depths``, the first d blocks of each
  stage) are not mask rows: they are per-phase sampling ranges of ``algo=ofa``, set on the
  supernet with ``set_active`` before a forward pass.
- A subnet (OFA's ``{ks, e, d}`` config) is an :class:`Arch` ``{edge: "k5e4"}`` over the blocks
  its depths keep; its string is one group per stage: ``"k7e6 k5e4 | k3e3 k5e6"``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gmnas_cli.config.schema import SpaceConfig
from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.spaces.base import SPACES, Active, Arch, Mask, NaturalInput, SearchSpace, Supernet
from gmnas_cli.spaces.mbconv.elastic import DynamicMBConv
from gmnas_cli.spaces.mbconv.layers import ConvBNAct, MBConv, he_fout_init, make_divisible

KERNELS = (3, 5, 7)  # OFA's elastic kernel sizes (transforms 7->5->3)
ACTS = ("relu", "h_swish")
_BLOCK = re.compile(r"^k(\d+)e(\d+(?:\.\d+)?)$")


def channels_last_on_cpu(x: torch.Tensor) -> torch.Tensor:
    """CPU: channels-last input (oneDNN's depthwise backward is about 3x faster than NCHW's;
    the whole tiny supernet's step about 1.5x on one core). CUDA keeps the trainer's choice."""
    return x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" and x.dim() == 4 else x


@dataclass(frozen=True)
class StageSpec:
    width: int
    stride: int
    act: str
    se: bool


@dataclass
class Subnet:
    """OFA's subnet config: kernel and expand ratio per block (all blocks), depth per stage."""

    ks: list[int]
    e: list[float]
    d: list[int]

    def to_json(self) -> dict[str, Any]:
        return {"ks": list(self.ks), "e": [_num(v) for v in self.e], "d": list(self.d)}

    def key(self) -> str:
        j = self.to_json()
        return f"{j['ks']}|{j['e']}|{j['d']}"


def _num(v: float) -> int | float:
    return int(v) if float(v).is_integer() else float(v)


def _stage_specs(cfg: SpaceConfig) -> list[StageSpec]:
    specs = []
    for i, st in enumerate(cfg.stages):
        try:
            spec = StageSpec(int(st["width"]), int(st["stride"]), str(st["act"]), bool(st["se"]))
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"space.stages[{i}]={st!r}: expected {{width, stride, act, se}}") from None
        if spec.width < 1 or spec.stride not in (1, 2) or spec.act not in ACTS:
            raise ConfigError(f"space.stages[{i}]={st!r}: width >= 1, stride 1 or 2, act one of {', '.join(ACTS)}")
        specs.append(spec)
    if not specs:
        raise ConfigError("space.stages must list at least one stage for space=ofa_mbv3")
    return specs


@SPACES.register("ofa_mbv3", keys=("width_mult", "stages", "expand_ratios", "depths", "first_width",
                                   "head_widths"))
class OfaSpace(SearchSpace):
    """Elastic MobileNetV3 (module docstring)."""

    name = "ofa_mbv3"
    report_table = "ofa"  # paper Table 5, OFA rows
    natural_input = NaturalInput(224, 3, 1000)  # ImageNet (OFA, paper 4.3)
    algorithms = ("ofa",)  # the elastic network has no relaxed or weighted form: progressive shrinking

    def __init__(self, cfg: SpaceConfig, num_classes: int, in_channels: int) -> None:
        self.stage_specs = _stage_specs(cfg)
        self.depths = sorted(int(d) for d in cfg.depths)
        if not self.depths or any(not 1 <= d <= 4 for d in self.depths):
            raise ConfigError(f"space.depths={list(cfg.depths)}: depths must lie in 1..4 (OFA: [2, 3, 4])")
        self.expand_ratios = sorted(float(e) for e in cfg.expand_ratios)
        if not self.expand_ratios or any(e < 1 for e in self.expand_ratios):
            raise ConfigError(f"space.expand_ratios={list(cfg.expand_ratios)}: ratios must be >= 1 (OFA: [3, 4, 6])")
        if not cfg.width_mult > 0:
            raise ConfigError(f"space.width_mult={cfg.width_mult}: must be > 0 (OFA releases 1.0 and 1.2)")
        self.max_depth = self.depths[-1]
        super().__init__(cfg, num_classes, in_channels)
        self.kernels = [int(o[1:]) for o in self.ops]
        wm = float(cfg.width_mult)
        self.first_width = make_divisible(int(cfg.first_width) * wm)
        self.widths = [make_divisible(s.width * wm) for s in self.stage_specs]
        head = list(cfg.head_widths)
        if len(head) != 2:
            raise ConfigError(f"space.head_widths={head}: expected [final expand, feature mix] (OFA: [960, 1280])")
        self.final_width = make_divisible(int(head[0]) * wm)
        self.mix_width = make_divisible(int(head[1]) * wm)

    # -- structure --------------------------------------------------------------------------
    def edge_names(self) -> list[str]:
        valid = [f"k{k}" for k in KERNELS]
        bad = [o for o in self.cfg.ops if o not in valid]
        if bad:
            raise ConfigError(f"space.ops: unknown kernel size {bad[0]!r}; valid: {', '.join(valid)}")
        return [f"b{i + 1}" for i in range(len(self.stage_specs) * self.max_depth)]

    def block_stage(self, index: int) -> int:
        return index // self.max_depth

    def block_config(self, index: int) -> tuple[int, int, int, StageSpec]:
        """(in channels, out channels, stride, stage spec) of dynamic block ``index``."""
        s, j = divmod(index, self.max_depth)
        spec = self.stage_specs[s]
        cin = self.widths[s - 1] if j == 0 and s > 0 else (self.first_width if j == 0 else self.widths[s])
        return cin, self.widths[s], spec.stride if j == 0 else 1, spec

    def build_supernet(self, mask: Mask) -> OfaSupernet:
        return OfaSupernet(self, mask)

    def shared_parameters(self, net: Supernet, edge: str) -> list[nn.Parameter]:
        """Every parameter outside the scored block (official ``get_split_gradients``: its kernel
        options share one weight, so the whole block is excluded)."""
        skip = {id(p) for p in net.blocks[self.edges.index(edge)].parameters()}
        return [p for p in net.parameters() if id(p) not in skip]

    # -- subnets ----------------------------------------------------------------------------
    def max_subnet(self, mask: Mask | None = None) -> Subnet:
        mask = mask or self.full_mask()
        ks = [max(int(o[1:]) for o in mask[e]) for e in self.edges]
        return Subnet(ks, [self.expand_ratios[-1]] * len(self.edges), [self.max_depth] * len(self.stage_specs))

    def min_subnet(self, mask: Mask | None = None) -> Subnet:
        mask = mask or self.full_mask()
        ks = [min(int(o[1:]) for o in mask[e]) for e in self.edges]
        return Subnet(ks, [self.expand_ratios[0]] * len(self.edges), [self.depths[0]] * len(self.stage_specs))

    def active_blocks(self, subnet: Subnet) -> list[int]:
        return [i for i in range(len(self.edges)) if i % self.max_depth < subnet.d[self.block_stage(i)]]

    def subnet_to_arch(self, subnet: Subnet) -> Arch:
        return {self.edges[i]: f"k{subnet.ks[i]}e{_num(subnet.e[i])}" for i in self.active_blocks(subnet)}

    def arch_to_subnet(self, arch: Arch) -> Subnet:
        """The subnet of ``arch``; blocks its depths drop get the largest kernel and ratio."""
        n_st = len(self.stage_specs)
        ks, e = [max(self.kernels)] * len(self.edges), [self.expand_ratios[-1]] * len(self.edges)
        d = [0] * n_st
        for i, edge in enumerate(self.edges):
            if edge in arch:
                k, r = self._parse_block(arch[edge])
                ks[i], e[i] = k, r
                s, j = divmod(i, self.max_depth)
                if j != d[s]:
                    raise ConfigError(f"architecture: block {edge} is kept but an earlier block of its stage is not")
                d[s] += 1
        bad = [x for x in d if x not in self.depths]
        if bad:
            raise ConfigError(f"architecture: stage depth {bad[0]} is not in space.depths={self.depths}")
        return Subnet(ks, e, d)

    def _parse_block(self, token: str) -> tuple[int, float]:
        m = _BLOCK.match(token)
        if m is None:
            raise ConfigError(f"architecture: bad block {token!r}; expected k<kernel>e<expand>, e.g. k5e4")
        k, r = int(m.group(1)), float(m.group(2))
        if f"k{k}" not in self.ops:
            raise ConfigError(f"architecture: unknown kernel size in {token!r}; valid: {', '.join(self.ops)}")
        if r not in self.expand_ratios:
            raise ConfigError(f"architecture: expand ratio of {token!r} not in space.expand_ratios="
                              f"{[_num(x) for x in self.expand_ratios]}")
        return k, r

    def subnet_from_json(self, obj: dict[str, Any]) -> Subnet:
        """OFA's ``{ks, e, d}`` JSON, checked against the space."""
        try:
            sub = Subnet([int(k) for k in obj["ks"]], [float(x) for x in obj["e"]], [int(x) for x in obj["d"]])
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"subnet config {obj!r}: expected {{ks: [...], e: [...], d: [...]}}") from None
        n, n_st = len(self.edges), len(self.stage_specs)
        if len(sub.ks) != n or len(sub.e) != n or len(sub.d) != n_st:
            raise ConfigError(f"subnet config: ks and e need {n} values and d {n_st} (this space)")
        for k, r in zip(sub.ks, sub.e):
            self._parse_block(f"k{k}e{_num(r)}")
        bad = [x for x in sub.d if x not in self.depths]
        if bad:
            raise ConfigError(f"subnet config: depth {bad[0]} is not in space.depths={self.depths}")
        return sub

    def subnet_in_mask(self, subnet: Subnet, mask: Mask) -> bool:
        return all(f"k{subnet.ks[i]}" in mask[self.edges[i]] for i in self.active_blocks(subnet))

    # -- architectures ----------------------------------------------------------------------
    def derive(self, weights: torch.Tensor, mask: Mask) -> Arch:
        """No architecture weights: the largest subnet of the mask (``algo=ofa`` derives by evolution)."""
        return self.subnet_to_arch(self.max_subnet(mask))

    def arch_to_str(self, arch: Arch) -> str:
        groups = []
        for s in range(len(self.stage_specs)):
            blocks = [arch[e] for e in self.edges[s * self.max_depth:(s + 1) * self.max_depth] if e in arch]
            groups.append(" ".join(blocks))
        return " | ".join(groups)

    def str_to_arch(self, text: str) -> Arch:
        """Parse ``arch_to_str``'s form or OFA's own subnet JSON ``{"ks": [...], "e": [...], "d": [...]}``
        (``get_active_subnet`` configs; an ``image_size`` key is ignored); ConfigError names the first bad token."""
        text = text.strip()
        if text.startswith("{"):
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as err:
                raise ConfigError(f"OFA architecture: not valid subnet JSON ({err})") from None
            if not isinstance(obj, dict):
                raise ConfigError("OFA architecture: subnet JSON must be an object {ks, e, d}")
            return self.subnet_to_arch(self.subnet_from_json(obj))
        stages = [g.split() for g in text.split("|")]
        if len(stages) != len(self.stage_specs):
            raise ConfigError(f"architecture {text!r}: {len(stages)} stages, this space has {len(self.stage_specs)}")
        arch: Arch = {}
        for s, tokens in enumerate(stages):
            if len(tokens) not in self.depths:
                raise ConfigError(f"architecture: stage {s + 1} has {len(tokens)} blocks; valid depths "
                                  f"{self.depths}")
            for j, tok in enumerate(tokens):
                self._parse_block(tok)
                arch[self.edges[s * self.max_depth + j]] = tok
        return arch

    def arch_in_mask(self, arch: Arch, mask: Mask) -> bool:
        return all(f"k{self._parse_block(op)[0]}" in mask[e] for e, op in arch.items())

    def sample_arch(self, mask: Mask, gen: torch.Generator) -> Arch:
        return self.subnet_to_arch(self.sample_subnet(mask, gen, self.expand_ratios, self.depths))

    def sample_subnet(self, mask: Mask, gen: torch.Generator, expands: list[float], depths: list[int]) -> Subnet:
        """Uniform kernels inside the mask, expand ratios and depths from the given ranges."""

        def pick(values: list) -> Any:
            return values[int(torch.randint(len(values), (1,), generator=gen))]

        ks = [int(pick(mask[e])[1:]) for e in self.edges]
        e = [float(pick(list(expands))) for _ in self.edges]
        d = [int(pick(list(depths))) for _ in self.stage_specs]
        return Subnet(ks, e, d)

    def network_summary(self, retrain_cfg: Any, num_classes: int) -> str:
        return (f"OFA MobileNetV3: width_mult {float(self.cfg.width_mult):g}, {len(self.cfg.stages)} stages of "
                f"up to {max(self.depths)} blocks, {num_classes} classes")

    def build_network(self, arch: Arch, retrain_cfg: Any, num_classes: int, in_channels: int) -> nn.Module:
        """The static MobileNetV3 of ``arch`` (OFA ``get_active_subnet``), freshly initialised."""
        return StaticMobileNetV3(self, self.arch_to_subnet(arch), num_classes, in_channels)


def first_block(width: int) -> MBConv:
    """OFA's fixed first block: 3x3 depthwise (relu) and projection, no expand, identity shortcut."""
    return MBConv(width, width, width, 3, 1, "relu", expand=False, residual=True)


class OfaSupernet(Supernet):
    """The elastic network; ``set_active`` chooses expand ratios and depths, ``active`` kernels."""

    def __init__(self, space: OfaSpace, mask: Mask) -> None:
        super().__init__(space, mask)
        self.first_conv = ConvBNAct(space.in_channels, space.first_width, 3, 2, "h_swish")
        self.first_block = first_block(space.first_width)
        blocks = []
        for i in range(len(space.edges)):
            cin, cout, stride, spec = space.block_config(i)
            blocks.append(DynamicMBConv(cin, cout, space.kernels or list(KERNELS), space.expand_ratios, stride,
                                        spec.act, spec.se))
        self.blocks = nn.ModuleList(blocks)
        self.final_expand = ConvBNAct(space.widths[-1], space.final_width, 1, 1, "h_swish")
        self.feature_mix = ConvBNAct(space.final_width, space.mix_width, 1, 1, "h_swish", bn=False)
        self.classifier = nn.Linear(space.mix_width, space.num_classes)
        he_fout_init(self)  # OFA init_models(net, 'he_fout'); the kernel transforms stay identity
        self.set_active(space.max_subnet(mask))

    def set_active(self, subnet: Subnet) -> None:
        """Expand ratios and depths of the next forward passes (kernels come from ``active``)."""
        self.active_subnet = subnet

    def active_for(self, subnet: Subnet) -> list[list[int]]:
        """Per edge, the index (in ``space.ops``) of the subnet's kernel."""
        ops = self.space.ops
        return [[ops.index(f"k{k}")] for k in subnet.ks]

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None, active: Active | None = None) -> torch.Tensor:
        space: OfaSpace = self.space  # type: ignore[assignment]
        sub = self.active_subnet
        h = self.first_block(self.first_conv(channels_last_on_cpu(x)))
        for i, block in enumerate(self.blocks):
            if i % space.max_depth >= sub.d[space.block_stage(i)]:
                continue
            k = sub.ks[i]
            if active is not None:
                if len(active[i]) != 1:
                    raise RuntimeError(f"ofa_mbv3: block {space.edges[i]} needs exactly one kernel, got {active[i]}")
                k = space.kernels[active[i][0]]
            h = block(h, k, sub.e[i])
        h = self.final_expand(h).mean((2, 3), keepdim=True)
        return self.classifier(self.feature_mix(h).flatten(1))


class StaticMobileNetV3(nn.Module):
    """A plain MobileNetV3 of one subnet (OFA ``MobileNetV3``); ``forward(x)`` returns logits."""

    def __init__(self, space: OfaSpace, subnet: Subnet, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.subnet = subnet
        fw = space.first_width
        self.first_conv = ConvBNAct(in_channels, fw, 3, 2, "h_swish")
        self.first_block = first_block(fw)
        blocks = []
        for i in space.active_blocks(subnet):
            cin, cout, stride, spec = space.block_config(i)
            mid = make_divisible(round(cin * subnet.e[i]))  # OFA DynamicMBConvLayer.active_middle_channel
            blocks.append(MBConv(cin, mid, cout, subnet.ks[i], stride, spec.act, spec.se,
                                 residual=stride == 1 and cin == cout))
        self.block_ids = space.active_blocks(subnet)
        self.blocks = nn.Sequential(*blocks)
        self.final_expand = ConvBNAct(space.widths[-1], space.final_width, 1, 1, "h_swish")
        self.feature_mix = ConvBNAct(space.final_width, space.mix_width, 1, 1, "h_swish", bn=False)
        self.classifier = nn.Linear(space.mix_width, num_classes)
        he_fout_init(self)  # OFA init_models(net, 'he_fout')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.first_block(self.first_conv(channels_last_on_cpu(x))))
        h = self.final_expand(h).mean((2, 3), keepdim=True)
        return self.classifier(self.feature_mix(h).flatten(1))


@torch.no_grad()
def extract_subnet(net: OfaSupernet, subnet: Subnet) -> StaticMobileNetV3:
    """The static network of ``subnet`` with the supernet's (transformed, first-channel) weights."""
    space: OfaSpace = net.space  # type: ignore[assignment]
    out = StaticMobileNetV3(space, subnet, space.num_classes, space.in_channels).to(net.classifier.weight.device)
    for name in ("first_conv", "first_block", "final_expand", "feature_mix", "classifier"):
        getattr(out, name).load_state_dict(getattr(net, name).state_dict())
    for static, i in zip(out.blocks, out.block_ids):
        dyn: DynamicMBConv = net.blocks[i]  # type: ignore[assignment]
        dyn.copy_active_to(static, subnet.ks[i], subnet.e[i])
    return out

