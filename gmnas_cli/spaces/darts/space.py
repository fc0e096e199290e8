"""The DARTS cell space (Liu et al. 2019) as used by GM-NAS (paper 4.2, Appendix D.2, docs/method-facts.md).

Cells have two inputs (the two previous cells' outputs, nodes 0 and 1) and ``space.nodes``
intermediate nodes (4: nodes 2..5); node i sums an edge from every earlier node, so a cell has
2 + 3 + 4 + 5 = 14 edges. The architecture weights have one row per edge of the normal cell, then
one per edge of the reduction cell: flat edge names ``normal:2<-0, normal:2<-1, normal:3<-0, ...,
reduce:5<-4`` (28 rows with 4 nodes). All cells of one type share that type's rows.

The supernet stacks ``space.N`` normal cells per stage with a reduction cell between stages
(3N + 2 cells; N=2 is DARTS' 8-cell search network), after a 3x3 stem of ``3 * space.C``
channels. The derived architecture is the usual DARTS genotype: per intermediate node the two
incoming edges whose strongest enabled non-``none`` op is largest, with that op.
"""

from __future__ import annotations

import ast
import json
from typing import Any

import torch
from torch import nn

from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.spaces.base import (
    SPACES,
    Active,
    Arch,
    Mask,
    MixedOp,
    SearchSpace,
    Supernet,
    weighted_sum,
)
from gmnas_cli.spaces.darts.grouped import (
    ONE,
    Copies,
    Scored,
    cat_copies,
    groupable,
    grouped_forward,
    grouped_node_terms,
)
from gmnas_cli.spaces.darts.network import Genotype, NetworkCIFAR, NetworkImageNet
from gmnas_cli.spaces.darts.ops import DARTS_OPS, FactorizedReduce, ReLUConvBN, Zero, _ReLUFirst, search_op

CELL_TYPES = ("normal", "reduce")

# DARTS (2nd order) from Liu et al. 2019, ``genotypes.DARTS_V2``: 3.349M parameters at C=36, 20 cells.
DARTS_V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
            "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
            "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
            "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
            "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")


def edge_name(cell: str, node: int, src: int) -> str:
    return f"{cell}:{node}<-{src}"


def parse_edge(edge: str) -> tuple[str, int, int]:
    """``"normal:3<-1"`` -> ``("normal", 3, 1)``."""
    cell, _, rest = edge.partition(":")
    node, _, src = rest.partition("<-")
    return cell, int(node), int(src)


class DartsSearchCell(nn.Module):
    """A DARTS search cell: every edge a ``MixedOp``; edges with no active op are skipped."""

    def __init__(self, nodes: int, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool,
                 op_names: list[str]) -> None:
        super().__init__()
        self.reduction = reduction
        self.nodes = nodes
        # DARTS search cells: preprocessing with affine=False (model_search.py).
        self.preprocess0 = (FactorizedReduce(c_pp, c, affine=False) if reduction_prev
                            else ReLUConvBN(c_pp, c, 1, 1, 0, affine=False))
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0, affine=False)
        pairs = [(i, j) for i in range(2, nodes + 2) for j in range(i)]
        self.edges = nn.ModuleList([
            MixedOp({o: search_op(o, c, 2 if reduction and j < 2 else 1) for o in op_names}, op_names)
            for _, j in pairs])
        # per edge and op: starts with a ReLU (sep/dil convs), so it takes the state's shared ReLU
        self._pre_relu = [[isinstance(op, _ReLUFirst) for op in mixed.ops] for mixed in self.edges]
        # per edge and op: runs grouped with the same op of the node's other edges (spaces/darts/grouped.py)
        self._grouped = [[groupable(op) for op in mixed.ops] for mixed in self.edges]
        self._strides = [2 if reduction and j < 2 else 1 for _, j in pairs]

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor, active: Active) -> torch.Tensor:
        states = self.node_states([self.preprocess0(s0), self.preprocess1(s1)], weights, active)
        return torch.cat(states[2:], dim=1)

    def forward_copies(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor, active: Active,
                       copies: Copies, scored: Scored | None) -> torch.Tensor:
        """``forward`` of ``copies.r`` cells side by side in the channels (``grouped.Copies``)."""
        states = [grouped_forward([self.preprocess0], s0, copies=copies),
                  grouped_forward([self.preprocess1], s1, copies=copies)]
        return cat_copies(self.node_states(states, weights, active, copies=copies, scored=scored)[2:], copies.r)

    def supports_copies(self) -> bool:
        """Every op and both preprocessing blocks run grouped (``grouped.groupable``)."""
        ops_ok = all(ok or isinstance(op, Zero) for mixed, row in zip(self.edges, self._grouped)
                     for op, ok in zip(mixed.ops, row))  # `none` is never computed
        return ops_ok and groupable(self.preprocess0) and groupable(self.preprocess1)

    def node_states(self, states: list[torch.Tensor], weights: torch.Tensor, active: Active,
                    stop: int | None = None, copies: Copies = ONE, scored: Scored | None = None
                    ) -> list[torch.Tensor]:
        """``states`` (the two inputs and the nodes computed before) extended up to node ``stop - 1``.

        Node i = sum over active (edge j->i, op k) of ``weights[e, k] * op_k(state j)`` as ONE fused
        weighted sum (``sum_e MixedOp_e``, the same terms); op k of all the node's edges runs as one
        grouped computation (``spaces/darts/grouped.py``: one module call per node and op, not per edge and op)
        and ReLU(state j) is computed once for all ops that start with a ReLU. Fewer Python-level
        module calls per step: the CPU step at small sizes is bound by their per-call cost.

        ``copies``/``scored``: the states hold ``copies.r`` copies side by side, and copy r has op
        ``scored.ops[r]`` alone on edge ``scored.edge`` of this cell, weighted ``scored.weights[r]``."""
        states = list(states)
        n_ops = weights.shape[-1]
        first = len(states)
        e = sum(range(2, first))  # edges into nodes 2..first-1 come first
        if scored is not None:
            active = [[] if k == scored.edge else a for k, a in enumerate(active)]
        for i in range(first, self.nodes + 2 if stop is None else stop):
            start = e
            index, ys, zero_edge, e = grouped_node_terms(self.edges, self._pre_relu, self._grouped, self._strides,
                                                         states, active, e, i, n_ops, copies)
            term = None
            if scored is not None and start <= scored.edge < e:
                term = scored.term(self.edges[scored.edge], states[scored.edge - start], copies.r)
            if ys:
                s = weighted_sum(weights, index, ys)
                s = s if term is None else s + term
            elif term is not None:
                s = term
            elif zero_edge is not None:  # `none` alone: its zeros (strided where the edge is)
                s = self.edges[zero_edge[0]].zeros(states[zero_edge[1]])
            else:  # no active input (a discrete arch never has this): zeros of the node's shape
                ref = states[1]
                s = (ref[:, :, ::2, ::2] if self.reduction else ref).mul(0.0)
            states.append(s)
        return states


class DartsSupernet(Supernet):
    """Stem, ``3N + 2`` search cells (reductions at N and 2N + 1), global pooling, classifier."""

    def __init__(self, space: DartsSpace, mask: Mask) -> None:
        super().__init__(space, mask)
        cfg = space.cfg
        c, n, nodes = int(cfg.C), int(cfg.N), int(cfg.nodes)
        c_stem = 3 * c  # DARTS: stem_multiplier 3
        self.stem = nn.Sequential(nn.Conv2d(space.in_channels, c_stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_stem))
        layers = 3 * n + 2
        c_pp, c_p, c_cur = c_stem, c_stem, c
        cells: list[DartsSearchCell] = []
        reduction_prev = False
        for i in range(layers):
            reduction = i in (n, 2 * n + 1)  # = layers // 3 and 2 * layers // 3 as in DARTS
            if reduction:
                c_cur *= 2
            cells.append(DartsSearchCell(nodes, c_pp, c_p, c_cur, reduction, reduction_prev, space.ops))
            reduction_prev = reduction
            c_pp, c_p = c_p, nodes * c_cur
        self.cells = nn.ModuleList(cells)
        self.cell_types = ["reduce" if cell.reduction else "normal" for cell in cells]
        self.edges_per_cell = len(space.edges) // 2
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, space.num_classes)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, active: Active | None = None) -> torch.Tensor:
        active = self.enabled if active is None else active
        n = self.edges_per_cell
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            lo = n if cell.reduction else 0
            s0, s1 = s1, cell(s0, s1, weights[lo : lo + n], active[lo : lo + n])
        return self.classifier(self.pool(s1).flatten(1))

    # -- GM scoring in two parts (criteria/gm/fast.py): (input s0 of the first cell that uses the edge's
    # row, that cell's s1 input, its preprocessed inputs and its nodes before the edge's target)
    def _first_use(self, edge: int) -> int:
        typ = "reduce" if edge >= self.edges_per_cell else "normal"
        return self.cell_types.index(typ) if typ in self.cell_types else len(self.cells)

    def forward_prefix(self, x: torch.Tensor, weights: torch.Tensor, active: Active,
                       edge: int) -> tuple[torch.Tensor, ...]:
        c = self._first_use(edge)
        if c >= len(self.cells):
            return super().forward_prefix(x, weights, active, edge)
        n = self.edges_per_cell
        s0 = s1 = self.stem(x)
        for cell in self.cells[:c]:
            lo = n if cell.reduction else 0
            s0, s1 = s1, cell(s0, s1, weights[lo : lo + n], active[lo : lo + n])
        cell = self.cells[c]
        lo = n if cell.reduction else 0
        target = parse_edge(self.space.edges[edge])[1]
        states = cell.node_states([cell.preprocess0(s0), cell.preprocess1(s1)], weights[lo : lo + n],
                                  active[lo : lo + n], stop=target)
        return (s1, *states)

    def forward_suffix(self, states: tuple[torch.Tensor, ...], weights: torch.Tensor, active: Active,
                       edge: int) -> torch.Tensor:
        c = self._first_use(edge)
        if c >= len(self.cells):
            return super().forward_suffix(states, weights, active, edge)
        n = self.edges_per_cell
        cell = self.cells[c]
        lo = n if cell.reduction else 0
        nodes = cell.node_states(list(states[1:]), weights[lo : lo + n], active[lo : lo + n])
        s0, s1 = states[0], torch.cat(nodes[2:], dim=1)
        for cell in self.cells[c + 1 :]:
            lo = n if cell.reduction else 0
            s0, s1 = s1, cell(s0, s1, weights[lo : lo + n], active[lo : lo + n])
        return self.classifier(self.pool(s1).flatten(1))

    def supports_copies(self) -> bool:
        """GM can score all of an edge's ops in one pass (``forward_suffix_copies``)."""
        return "reduce" in self.cell_types and all(cell.supports_copies() for cell in self.cells)

    def forward_suffix_copies(self, states: tuple[torch.Tensor, ...], weights: torch.Tensor, active: Active,
                              edge: int, copies: Copies, ops: list[int], scored_weights: torch.Tensor | None
                              ) -> torch.Tensor:
        """``forward_suffix`` of ``copies.r`` networks side by side in the channels (criteria/gm/fast.py):
        ``states`` hold the copies of ``forward_prefix``'s states; copy i has op ``ops[i]`` alone on
        ``edge`` (in every cell of its type), weighted ``scored_weights[i]`` (``None``: 1), and the
        other edges ``weights``. Returns logits ``[batch, copies.r, classes]``."""
        c = self._first_use(edge)
        n = self.edges_per_cell
        scored_reduce = edge >= n
        scored = Scored(edge % n, ops, scored_weights)
        cell = self.cells[c]
        lo = n if cell.reduction else 0
        nodes = cell.node_states(list(states[1:]), weights[lo : lo + n], active[lo : lo + n], copies=copies,
                                 scored=scored)
        s0, s1 = states[0], cat_copies(nodes[2:], copies.r)
        for cell in self.cells[c + 1 :]:
            lo = n if cell.reduction else 0
            s0, s1 = s1, cell.forward_copies(s0, s1, weights[lo : lo + n], active[lo : lo + n], copies,
                                             scored if cell.reduction == scored_reduce else None)
        pooled = self.pool(s1).flatten(1)
        return self.classifier(pooled.view(pooled.shape[0], copies.r, -1))


@SPACES.register("darts", keys=("C", "N", "nodes", "split_cells"))
class DartsSpace(SearchSpace):
    name = "darts"
    op_copies = True  # DartsSupernet.forward_suffix_copies (spaces/darts/grouped.py)
    report_table = "darts"  # paper Table 4

    # -- structure --------------------------------------------------------------------------
    def edge_names(self) -> list[str]:
        self.check_ops(DARTS_OPS, "DARTS")
        if int(self.cfg.nodes) < 2:
            raise ConfigError(f"space.nodes={self.cfg.nodes}: a DARTS cell needs at least 2 intermediate nodes")
        if int(self.cfg.N) < 0:
            raise ConfigError(f"space.N={self.cfg.N} must be >= 0 (normal cells per stage)")
        bad_cells = [c for c in self.cfg.split_cells if c not in CELL_TYPES]
        if bad_cells:
            raise ConfigError(f"space.split_cells: unknown cell type {bad_cells[0]!r}; valid: normal, reduce")
        nodes = range(2, int(self.cfg.nodes) + 2)
        return [edge_name(cell, i, j) for cell in CELL_TYPES for i in nodes for j in range(i)]

    def splittable_edges(self) -> list[str]:
        """Edges of the cell types in ``space.split_cells`` (normal only by default, docs/method-facts.md)."""
        return [e for e in self.edges if parse_edge(e)[0] in self.cfg.split_cells]

    def build_supernet(self, mask: Mask) -> DartsSupernet:
        return DartsSupernet(self, mask)

    def shared_parameters(self, net: Supernet, edge: str) -> list[nn.Parameter]:
        """Every cell's op parameters except the scored edge in the cells of its type (docs/method-facts.md)."""
        cell_type = parse_edge(edge)[0]
        k = self.edges.index(edge) % net.edges_per_cell
        params: list[nn.Parameter] = []
        for cell, typ in zip(net.cells, net.cell_types):
            for e, mixed in enumerate(cell.edges):
                if not (typ == cell_type and e == k):
                    params += list(mixed.parameters())
        return params

    def network_summary(self, retrain_cfg: Any, num_classes: int) -> str:
        kind = "NetworkImageNet" if str(retrain_cfg.network) == "imagenet" else "NetworkCIFAR"
        return (f"DARTS {kind}: C={retrain_cfg.C}, {retrain_cfg.layers} cells, {num_classes} classes "
                f"(retrain={retrain_cfg.network} settings)")

    def set_drop_path(self, net: nn.Module, prob: float) -> None:
        net.drop_path_prob = prob  # DARTS train.py: model.drop_path_prob = drop_path_prob * epoch / epochs

    def build_network(self, arch: Arch, retrain_cfg: Any, num_classes: int, in_channels: int) -> nn.Module:
        """NetworkCIFAR (``retrain.network: cifar``) or NetworkImageNet (``imagenet``) from ``arch``."""
        geno = self.arch_to_genotype(arch)
        kind = str(getattr(retrain_cfg, "network", "cifar"))
        aux = float(retrain_cfg.auxiliary_weight) > 0
        c, layers = int(retrain_cfg.C), int(retrain_cfg.layers)
        if kind == "cifar":
            return NetworkCIFAR(c, num_classes, layers, aux, geno, in_channels)
        if kind == "imagenet":
            return NetworkImageNet(c, num_classes, layers, aux, geno, in_channels)
        raise ConfigError(f"retrain.network={kind!r}; valid for space darts: cifar, imagenet")

    # -- architectures ----------------------------------------------------------------------
    def _candidates(self, mask: Mask, edge: str) -> list[str]:
        """Ops a genotype may put on ``edge``: enabled and not ``none`` (DARTS excludes it)."""
        return [o for o in self.ops if o in mask[edge] and o != "none"]

    def derive(self, weights: torch.Tensor, mask: Mask) -> Arch:
        """The DARTS genotype: per node the top-2 incoming edges by their strongest enabled
        non-``none`` op weight (ties: lower input), each with that op (ties: first in op order).
        Within a node the stronger edge comes first, as in DARTS' ``genotype()``."""
        w = weights.detach().float().cpu()
        arch: Arch = {}
        for cell in CELL_TYPES:
            for i in range(2, int(self.cfg.nodes) + 2):
                cands = []
                for j in range(i):
                    e = edge_name(cell, i, j)
                    ops = self._candidates(mask, e)
                    if not ops:
                        continue
                    row = w[self.edges.index(e)]
                    best = max(ops, key=lambda o: (float(row[self.ops.index(o)]), -self.ops.index(o)))
                    cands.append((float(row[self.ops.index(best)]), j, best))
                if len(cands) < 2:
                    raise ValueError(f"{cell} node {i}: fewer than 2 incoming edges have an enabled "
                                     f"non-none op in the mask")
                for _, j, op in sorted(cands, key=lambda t: (-t[0], t[1]))[:2]:
                    arch[edge_name(cell, i, j)] = op
        return arch

    def sample_arch(self, mask: Mask, gen: torch.Generator) -> Arch:
        """A random genotype inside ``mask``: per node 2 distinct inputs, each a non-none enabled op."""
        arch: Arch = {}
        for cell in CELL_TYPES:
            for i in range(2, int(self.cfg.nodes) + 2):
                inputs = [j for j in range(i) if self._candidates(mask, edge_name(cell, i, j))]
                if len(inputs) < 2:
                    raise ValueError(f"{cell} node {i}: fewer than 2 incoming edges are usable in the mask")
                picked = sorted(inputs[int(k)] for k in torch.randperm(len(inputs), generator=gen)[:2])
                for j in picked:
                    ops = self._candidates(mask, edge_name(cell, i, j))
                    arch[edge_name(cell, i, j)] = ops[int(torch.randint(len(ops), (1,), generator=gen))]
        return arch

    def arch_to_genotype(self, arch: Arch) -> Genotype:
        """The ``Genotype`` of ``arch``: nodes in order, a node's edges in the order of ``arch``."""
        nodes = range(2, int(self.cfg.nodes) + 2)
        cells: dict[str, list[tuple[str, int]]] = {}
        for cell in CELL_TYPES:
            pairs: list[tuple[str, int]] = []
            for i in nodes:
                items = [(op, parse_edge(e)[2]) for e, op in arch.items() if parse_edge(e)[:2] == (cell, i)]
                if len(items) != 2:
                    raise ValueError(f"not a DARTS genotype: {cell} node {i} has {len(items)} inputs, needs 2")
                pairs += items
            cells[cell] = pairs
        concat = list(nodes)
        return Genotype(cells["normal"], concat, cells["reduce"], concat)

    def arch_to_str(self, arch: Arch) -> str:
        """``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], reduce=[...], ...)``."""
        g = self.arch_to_genotype(arch)
        return (f"Genotype(normal={g.normal!r}, normal_concat={g.normal_concat!r}, "
                f"reduce={g.reduce!r}, reduce_concat={g.reduce_concat!r})")

    def arch_to_json(self, arch: Arch) -> dict[str, Any]:
        """The JSON form: ``{"normal": [[op, input], ...], "normal_concat": [2, 3, 4, 5], ...}``."""
        g = self.arch_to_genotype(arch)
        return {"normal": [[op, j] for op, j in g.normal], "normal_concat": list(g.normal_concat),
                "reduce": [[op, j] for op, j in g.reduce], "reduce_concat": list(g.reduce_concat)}

    def json_to_arch(self, obj: dict[str, Any]) -> Arch:
        """Inverse of ``arch_to_json`` (also accepts tuples, i.e. a ``Genotype._asdict()``)."""
        if not isinstance(obj, dict):
            raise ValueError(f"not a DARTS genotype: expected a dict, got {type(obj).__name__}")
        n = int(self.cfg.nodes)
        arch: Arch = {}
        for cell in CELL_TYPES:
            pairs = obj.get(cell)
            if not isinstance(pairs, (list, tuple)) or len(pairs) != 2 * n:
                raise ValueError(f"not a DARTS genotype: {cell} needs {2 * n} (op, input) pairs")
            concat = obj.get(f"{cell}_concat", list(range(2, n + 2)))
            if (not isinstance(concat, (list, tuple)) or any(isinstance(c, bool) or not isinstance(c, int) for c in concat)
                    or list(concat) != list(range(2, n + 2))):
                raise ValueError(f"not a DARTS genotype: {cell}_concat must be {list(range(2, n + 2))}, "
                                 f"got {concat!r}")
            for idx, item in enumerate(pairs):
                node = 2 + idx // 2
                if not isinstance(item, (list, tuple)) or len(item) != 2:
                    raise ValueError(f"not a DARTS genotype: {cell} item {item!r} is not (op, input)")
                op, j = item[0], item[1]
                if op not in DARTS_OPS or op == "none":
                    valid = ", ".join(o for o in DARTS_OPS if o != "none")
                    raise ValueError(f"not a DARTS genotype: unknown op {op!r} in {cell} item {tuple(item)!r}; "
                                     f"valid: {valid}")
                if isinstance(j, bool) or not isinstance(j, int) or not 0 <= j < node:
                    raise ValueError(f"not a DARTS genotype: {cell} node {node} has input {j!r}")
                e = edge_name(cell, node, j)
                if e in arch:
                    raise ValueError(f"not a DARTS genotype: {cell} node {node} uses input {j} twice")
                arch[e] = op
        return arch

    def str_to_arch(self, text: str) -> Arch:
        """Parse ``Genotype(...)`` text (concat as a list or ``range(2, 6)``) or its JSON form; no ``eval``."""
        text = text.strip()
        if text.startswith("{"):
            try:
                return self.json_to_arch(json.loads(text))
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a DARTS genotype (bad JSON: {exc.msg}): {text[:80]!r}") from None
        try:
            node = ast.parse(text, mode="eval").body
        except SyntaxError as exc:
            at = max(int(exc.offset or 1) - 1, 0)
            raise ValueError(f"not a DARTS genotype: syntax error at character {at + 1}, near "
                             f"{text[at:at + 20]!r}") from None
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Genotype"):
            raise ValueError(f"not a DARTS genotype (expected Genotype(...)): {text[:80]!r}")
        values: dict[str, Any] = {}
        for key, arg in zip(Genotype._fields, node.args):
            values[key] = _literal(arg, text)
        for kw in node.keywords:
            if kw.arg not in Genotype._fields:
                raise ValueError(f"not a DARTS genotype (unknown field {kw.arg!r}): {text[:80]!r}")
            values[kw.arg] = _literal(kw.value, text)
        return self.json_to_arch(values)


def _literal(node: ast.AST, text: str) -> Any:
    """A Python literal, or ``range(a, b)`` (DARTS prints concat that way)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        try:
            return list(range(*[int(ast.literal_eval(a)) for a in node.args]))
        except (ValueError, TypeError, SyntaxError):
            raise ValueError(f"not a DARTS genotype (bad range): {text[:80]!r}") from None
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(f"not a DARTS genotype (only literals and range(...)): {text[:80]!r}") from None
