"""DARTS evaluation networks built from a genotype (Liu et al. 2019, ``model.py``).

``NetworkCIFAR``: a 3x3 stem with ``3 * C`` channels, ``layers`` cells with reduction cells at
``layers // 3`` and ``2 * layers // 3``, drop-path on every non-identity op, an auxiliary head after
the cell at ``2 * layers // 3`` (DARTS protocol, paper Appendix D.2: 20 cells, C=36, auxiliary 0.4).
``NetworkImageNet``: the mobile setting's three stride-2 stem convolutions, 14 cells, C=48.
``forward`` returns logits, or ``(logits, aux_logits)`` in training mode when the auxiliary head
exists.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from gmnas_cli.spaces.darts.ops import FactorizedReduce, Identity, ReLUConvBN, darts_op, drop_path


class Genotype(NamedTuple):
    """A DARTS genotype: per cell type, two ``(op, input)`` pairs per intermediate node."""

    normal: list[tuple[str, int]]
    normal_concat: list[int]
    reduce: list[tuple[str, int]]
    reduce_concat: list[int]


class EvalCell(nn.Module):
    """A discrete cell: node k = op_a(state_a) + op_b(state_b); output = concat of ``concat`` states."""

    def __init__(self, genotype: Genotype, c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool) -> None:
        super().__init__()
        self.preprocess0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0)
        pairs = genotype.reduce if reduction else genotype.normal
        self.concat = list(genotype.reduce_concat if reduction else genotype.normal_concat)
        self.multiplier = len(self.concat)
        self.steps = len(pairs) // 2
        self.indices = [int(j) for _, j in pairs]
        self.ops = nn.ModuleList([darts_op(name, c, 2 if reduction and j < 2 else 1, affine=True)
                                  for name, j in pairs])

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(self.steps):
            hs = []
            for k in (2 * i, 2 * i + 1):
                h = self.ops[k](states[self.indices[k]])
                if self.training and drop_prob > 0.0 and not isinstance(self.ops[k], Identity):
                    h = drop_path(h, drop_prob)
                hs.append(h)
            states.append(hs[0] + hs[1])
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """DARTS' auxiliary tower: ReLU, 5x5 avg-pool, 1x1 conv 128, BN, ReLU, 2x2 conv 768, [BN,] ReLU, FC.

    CIFAR (input 8x8): pool stride 3 and a BN after the 2x2 conv; ImageNet (input 7x7): pool
    stride 2 and no BN there (as in DARTS' code). Maps smaller than 5x5 (tiny images) are pooled
    adaptively to 2x2 instead, so that the head works on any input size.
    """

    def __init__(self, c: int, num_classes: int, imagenet: bool = False) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(5, stride=2 if imagenet else 3, padding=0, count_include_pad=False)
        self.features = nn.Sequential(
            nn.Conv2d(c, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            *([] if imagenet else [nn.BatchNorm2d(768)]),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        x = self.pool(x) if min(x.shape[-2:]) >= 5 else F.adaptive_avg_pool2d(x, 2)
        x = F.adaptive_avg_pool2d(self.features(x), 1)  # 1x1 already at the standard sizes
        return self.classifier(x.flatten(1))


class _EvalNetwork(nn.Module):
    """Cells, auxiliary head and classifier shared by the CIFAR and ImageNet layouts."""

    def _build_cells(self, genotype: Genotype, c: int, layers: int, c_pp: int, c_p: int,
                     reduction_prev: bool, num_classes: int, auxiliary: bool, imagenet: bool) -> None:
        self.layers = layers
        self.drop_path_prob = 0.0  # set per epoch by the retrain loop (linear increase, DARTS)
        self.aux_index = 2 * layers // 3
        cells: list[EvalCell] = []
        c_cur = c
        c_aux = c_p
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c_cur *= 2
            cell = EvalCell(genotype, c_pp, c_p, c_cur, reduction, reduction_prev)
            reduction_prev = reduction
            cells.append(cell)
            c_pp, c_p = c_p, cell.multiplier * c_cur
            if i == self.aux_index:
                c_aux = c_p
        self.cells = nn.ModuleList(cells)
        self.auxiliary_head = AuxiliaryHead(c_aux, num_classes, imagenet) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def _run_cells(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_index and self.auxiliary_head is not None and self.training:
                aux = self.auxiliary_head(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        return (logits, aux) if aux is not None else logits


class NetworkCIFAR(_EvalNetwork):
    """DARTS' CIFAR evaluation network (20 cells, C=36 in the DARTS protocol)."""

    def __init__(self, c: int, num_classes: int, layers: int, auxiliary: bool, genotype: Genotype,
                 in_channels: int = 3, stem_multiplier: int = 3) -> None:
        super().__init__()
        c_stem = stem_multiplier * c  # DARTS: stem_multiplier 3
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_stem))
        self._build_cells(genotype, c, layers, c_stem, c_stem, False, num_classes, auxiliary, imagenet=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        s = self.stem(x)
        return self._run_cells(s, s)


class NetworkImageNet(_EvalNetwork):
    """DARTS' ImageNet mobile-setting network (14 cells, C=48): three stride-2 stem convolutions."""

    def __init__(self, c: int, num_classes: int, layers: int, auxiliary: bool, genotype: Genotype,
                 in_channels: int = 3) -> None:
        super().__init__()
        self.stem0 = nn.Sequential(
            nn.Conv2d(in_channels, c // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c // 2, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c),
        )
        self.stem1 = nn.Sequential(nn.ReLU(inplace=False), nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False),
                                   nn.BatchNorm2d(c))
        self._build_cells(genotype, c, layers, c, c, True, num_classes, auxiliary, imagenet=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        s0 = self.stem0(x)
        s1 = self.stem1(s0)
        return self._run_cells(s0, s1)

