"""The partition tree (docs/experiment-directory.md), persisted as ``tree.json``.

Per node: ``id``, ``parent``, ``depth``, ``mask`` (edge -> enabled op names), ``created_epoch``,
and for a split node ``split`` = {``edge``, ``groups``, ``children``, ``scores``}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.tree import Tree

from gmnas_cli.infra.errors import ConfigError, StageError
from gmnas_cli.infra.io import read_json, write_json

Mask = dict[str, list[str]]


@dataclass
class Node:
    id: int
    parent: int | None
    depth: int
    mask: Mask
    created_epoch: int = 0
    split: dict[str, Any] | None = None

    @property
    def is_leaf(self) -> bool:
        return self.split is None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "parent": self.parent, "depth": self.depth,
                               "created_epoch": self.created_epoch, "mask": self.mask}
        if self.split is not None:
            out["split"] = self.split
        return out


# The recovering command of a damaged tree: the split rebuilt from the warmup checkpoint.
_REBUILD = "`gmnas split force=true` rebuilds the split from the warmup checkpoint"


def _check_node_types(n: Node, path: Path) -> None:
    """The JSON types of one node (its consistency is ``PartitionTree.validate``'s)."""
    ok_mask = isinstance(n.mask, dict) and all(
        isinstance(e, str) and isinstance(ops, list) and all(isinstance(o, str) for o in ops) for e, ops in n.mask.items())
    if not ok_mask:
        raise StageError(f"{path}: node {n.id} has a malformed mask (expected edge -> list of ops); {_REBUILD}")
    if n.split is not None and not (isinstance(n.split, dict) and isinstance(n.split.get("children"), list)
                                    and all(isinstance(c, int) and not isinstance(c, bool) for c in n.split["children"])):
        raise StageError(f"{path}: node {n.id} has a malformed split record; {_REBUILD}")


@dataclass
class PartitionTree:
    """Nodes in creation order; node 0 is the root (the One-Shot supernet)."""

    nodes: list[Node] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def with_root(cls, mask: Mask, **meta: Any) -> PartitionTree:
        return cls(nodes=[Node(id=0, parent=None, depth=0, mask=mask)], meta=dict(meta))

    def __getitem__(self, node_id: int) -> Node:
        return self.nodes[node_id]

    def leaves(self) -> list[Node]:
        return [n for n in self.nodes if n.is_leaf]

    def leaf(self, index: int) -> Node:
        """The ``index``-th leaf in node order (``leaf=0..L-1`` on the command line)."""
        leaves = self.leaves()
        if not 0 <= index < len(leaves):
            raise ConfigError(f"leaf={index}: the tree has {len(leaves)} leaves; valid: leaf=0..{len(leaves) - 1} "
                              f"(nodes {', '.join(str(n.id) for n in leaves)})")
        return leaves[index]

    def add_children(self, parent: Node, edge: str, groups: list[list[str]], scores: dict[str, Any],
                     epoch: int) -> list[Node]:
        """Split ``parent`` on ``edge``: one child per op group, masks narrowed on that edge."""
        children = []
        shared = set(self.meta.get("shared_ops", []))  # e.g. DARTS' `none`: kept in every child
        for group in groups:
            mask = {e: list(ops) for e, ops in parent.mask.items()}
            mask[edge] = [op for op in parent.mask[edge] if op in group or op in shared]
            child = Node(id=len(self.nodes), parent=parent.id, depth=parent.depth + 1, mask=mask,
                         created_epoch=epoch)
            self.nodes.append(child)
            children.append(child)
        parent.split = {"edge": edge, "groups": [list(g) for g in groups],
                        "children": [c.id for c in children], "scores": scores}
        return children

    def split_edges(self, node: Node) -> list[str]:
        """Edges already split on the path from the root to ``node``."""
        edges = []
        while node.parent is not None:
            parent = self.nodes[node.parent]
            edges.append(parent.split["edge"])
            node = parent
        return edges[::-1]

    # -- persistence ------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"format": "gmnas-tree/1", **self.meta, "nodes": [n.to_json() for n in self.nodes]}

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> PartitionTree:
        path = Path(path)
        if not path.exists():
            raise StageError(f"{path} is missing; run `gmnas warmup` first")
        try:
            data = read_json(path)
        except StageError as err:
            raise StageError(f"{err}; {_REBUILD}") from None
        try:
            nodes = [Node(id=int(d["id"]), parent=d["parent"], depth=int(d["depth"]), mask=d["mask"],
                          created_epoch=int(d.get("created_epoch", 0)), split=d.get("split"))
                     for d in data["nodes"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise StageError(f"{path}: malformed partition tree ({exc!r}); {_REBUILD}") from None
        for n in nodes:
            _check_node_types(n, path)
        meta = {k: v for k, v in data.items() if k not in ("nodes",)}
        tree = cls(nodes=nodes, meta=meta)
        try:
            tree.validate(path)
        except StageError as err:
            raise StageError(f"{err}; {_REBUILD}") from None
        return tree

    def validate(self, where: str | Path = "tree.json") -> None:
        """Check the tree is consistent: ids, parents, masks within the space's edges and ops, and
        children partitioning their parent."""
        space_ops, space_edges = self.meta.get("ops"), self.meta.get("edges")
        for i, n in enumerate(self.nodes):
            if isinstance(space_edges, list) and sorted(n.mask) != sorted(space_edges):
                raise StageError(f"{where}: node {i}'s mask names edges {sorted(n.mask)}, not the space's "
                                 f"{space_edges}")
            if isinstance(space_ops, list):
                for e, enabled in n.mask.items():
                    unknown = [o for o in enabled if o not in space_ops]
                    if unknown:
                        raise StageError(f"{where}: node {i} enables {unknown} on edge {e!r}, which are not "
                                         f"ops of the space {space_ops}")
            if n.id != i:
                raise StageError(f"{where}: node at position {i} has id {n.id}")
            if (n.parent is None) != (i == 0):
                raise StageError(f"{where}: node {i} has parent {n.parent!r}")
            if n.parent is not None and (isinstance(n.parent, bool) or not isinstance(n.parent, int)
                                         or not 0 <= n.parent < i):
                raise StageError(f"{where}: node {i} has parent {n.parent!r}, which is not an earlier node")
            if n.parent is not None and i not in (self.nodes[n.parent].split or {}).get("children", []):
                raise StageError(f"{where}: node {i} has parent {n.parent}, which does not list it as a child")
            if n.parent is not None and n.depth != self.nodes[n.parent].depth + 1:
                raise StageError(f"{where}: node {i} has depth {n.depth}, parent depth "
                                 f"{self.nodes[n.parent].depth}")
            if n.split is None:
                continue
            edge, kids = n.split.get("edge"), n.split.get("children", [])
            if edge not in n.mask:
                raise StageError(f"{where}: node {i} is split on unknown edge {edge!r}")
            covered: list[str] = []
            shared = set(self.meta.get("shared_ops", []))
            for c in kids:
                if not (0 <= c < len(self.nodes)) or self.nodes[c].parent != i:
                    raise StageError(f"{where}: node {i} lists child {c} whose parent is not {i}")
                child = self.nodes[c]
                for e, ops in n.mask.items():
                    if e != edge and sorted(child.mask.get(e, [])) != sorted(ops):
                        raise StageError(f"{where}: child {c} of node {i} changes edge {e!r}, "
                                         f"which was not split")
                if not shared.issubset(child.mask.get(edge, [])) and shared & set(n.mask[edge]):
                    raise StageError(f"{where}: child {c} of node {i} drops shared ops {sorted(shared)}")
                covered += [o for o in child.mask.get(edge, []) if o not in shared]
            expected = [o for o in n.mask[edge] if o not in shared]
            if not kids or sorted(covered) != sorted(expected) or len(set(covered)) != len(covered):
                raise StageError(f"{where}: the masks of node {i}'s children on edge {edge!r} "
                                 f"({covered}) do not partition its ops {n.mask[edge]}")

    # -- display ----------------------------------------------------------------------------
    def render(self, results: dict[int, dict[str, Any]] | None = None, selected: int | None = None) -> Any:
        """A rich Tree of nodes with split edges, op groups and cut costs; ``results``: leaf id ->
        its search ``result.json`` (derived architecture, validation loss/accuracy)."""

        results = results or {}

        def label(n: Node) -> str:
            text = f"[bold]node {n.id}[/bold] (depth {n.depth}, epoch {n.created_epoch})"
            if n.parent is not None:
                p = self.nodes[n.parent]
                text += f"  {p.split['edge']}: {{{', '.join(n.mask[p.split['edge']])}}}"
            if n.split:
                e = n.split["edge"]
                cost = (n.split.get("scores") or {}).get(e, {}).get("cut_cost")
                groups = " / ".join("{" + ", ".join(g) + "}" for g in n.split.get("groups", []))
                text += f"  → split {e} into {groups}" + (f" (cut cost {cost:.4f})" if cost is not None else "")
            else:
                text += "  [green]leaf[/green]" + (" [bold]* selected[/bold]" if n.id == selected else "")
                res = results.get(n.id)
                if res:
                    text += (f"\n{escape(str(res.get('arch')))}\nval_loss {res.get('val_loss', float('nan')):.4f}, "
                             f"val_acc {res.get('val_acc', float('nan')):.4f}")
            return text

        root = Tree(label(self.nodes[0]))

        def add(branch: Any, n: Node) -> None:
            for c in (n.split or {}).get("children", []):
                add(branch.add(label(self.nodes[c])), self.nodes[c])

        add(root, self.nodes[0])
        return root
