"""The worked example of docs/extending.md: a new search space as one module, one registry line and
one YAML file, run through warmup, split and search.

The space is registered in a forked child process only (``SPACES`` of the test session stays
the built-in one); its YAML lives in a temporary folder added to Hydra's search path.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

import torch
from torch import nn

from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.spaces import SPACES, Arch, Mask, SearchSpace, Supernet
from gmnas_cli.spaces.base import MixedOp
from tests._reliability import run_inproc
from tests.conftest import REPO

# -- the example (docs/extending.md shows this code) ------------------------------------------

TOY_OPS = ["conv_3x3", "conv_1x1", "skip"]
WIDTH = 8


def toy_op(name: str) -> nn.Module:
    if name == "skip":
        return nn.Identity()
    k = 3 if name == "conv_3x3" else 1
    return nn.Sequential(nn.ReLU(), nn.Conv2d(WIDTH, WIDTH, k, padding=k // 2, bias=False), nn.BatchNorm2d(WIDTH))


class ToyChainNet(Supernet):
    """Stem, then the edges one after another (each a weighted sum of its active ops), pool, linear."""

    def __init__(self, space: SearchSpace, mask: Mask) -> None:
        super().__init__(space, mask)
        self.stem = nn.Sequential(nn.Conv2d(space.in_channels, WIDTH, 3, padding=1, bias=False), nn.BatchNorm2d(WIDTH))
        self.edges = nn.ModuleList([MixedOp({o: toy_op(o) for o in space.ops}, space.ops) for _ in space.edges])
        self.classifier = nn.Linear(WIDTH, space.num_classes)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, active=None) -> torch.Tensor:
        active = self.enabled if active is None else active
        h = self.stem(x)
        for i, edge in enumerate(self.edges):
            h = edge(h, weights[i], active[i])
        return self.classifier(h.mean((2, 3)))


class ToyChainSpace(SearchSpace):
    """``space=toy_chain``: three edges in a chain, ops ``conv_3x3``, ``conv_1x1``, ``skip``."""

    name = "toy_chain"

    def edge_names(self) -> list[str]:
        self.check_ops(TOY_OPS, "toy_chain")
        return ["e1", "e2", "e3"]

    def build_supernet(self, mask: Mask) -> Supernet:
        return ToyChainNet(self, mask)

    def shared_parameters(self, net: Supernet, edge: str) -> list[nn.Parameter]:
        """GM compares the gradients of every parameter outside the scored edge."""
        scored = {id(p) for p in net.edges[self.edges.index(edge)].parameters()}
        return [p for p in net.parameters() if id(p) not in scored]

    def derive(self, weights: torch.Tensor, mask: Mask) -> Arch:
        w = weights.detach().float().cpu().masked_fill(~self.mask_tensor(mask), float("-inf"))
        return {e: self.ops[int(w[i].argmax())] for i, e in enumerate(self.edges)}

    def arch_to_str(self, arch: Arch) -> str:
        return ",".join(arch[e] for e in self.edges)

    def str_to_arch(self, text: str) -> Arch:
        tokens = [t.strip() for t in text.split(",")]
        if len(tokens) != len(self.edges) or any(t not in self.ops for t in tokens):
            raise ConfigError(f"toy_chain architecture {text!r}: expected {len(self.edges)} ops of {self.ops}")
        return dict(zip(self.edges, tokens))

    def sample_arch(self, mask: Mask, gen: torch.Generator) -> Arch:
        return {e: mask[e][int(torch.randint(len(mask[e]), (1,), generator=gen))] for e in self.edges}


TOY_YAML = """\
# conf/space/toy_chain.yaml
name: toy_chain
ops: [conv_3x3, conv_1x1, skip]
"""

# -- the test -----------------------------------------------------------------------------------


def _in_child(fn) -> int:
    """Run ``fn()`` in a fork (registrations stay there); its exit status."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = fn()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_toy_space_runs_warmup_split_and_search(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    (conf / "space").mkdir(parents=True)
    (conf / "space" / "toy_chain.yaml").write_text(TOY_YAML)
    args = ["experiment=smoke", "space=toy_chain", "criterion=gm", "splits=1", "name=toy",
            f"out_dir={tmp_path / 'out'}", f"hydra.searchpath=[file://{conf}]"]
    log = tmp_path / "log.txt"

    def child() -> int:
        SPACES.register("toy_chain")(ToyChainSpace)  # the one catalog line, here in the test
        for stage in ("warmup", "split", "search"):
            code, err = run_inproc(stage, *args)
            if code:
                log.write_text(err)
                return code
        return 0

    assert _in_child(child) == 0, log.read_text() if log.exists() else "child failed"
    root = tmp_path / "out" / "toy"
    nodes = json.loads((root / "tree.json").read_text())["nodes"]
    leaves = [n for n in nodes if not n.get("split")]
    assert len(leaves) == 2  # one GM split, branching 2
    assert nodes[0]["split"]["edge"] in ("e1", "e2", "e3")
    for leaf in leaves:
        result = json.loads((root / "search" / str(leaf["id"]) / "result.json").read_text())
        arch = dict(zip(["e1", "e2", "e3"], result["arch"].split(",")))
        assert all(op in leaf["mask"][e] for e, op in arch.items())


def test_docs_show_the_tested_example() -> None:
    """docs/extending.md quotes this module's example verbatim."""
    doc = (REPO / "docs" / "extending.md").read_text()
    for obj in (toy_op, ToyChainNet, ToyChainSpace):
        assert inspect.getsource(obj) in doc, f"docs/extending.md: {obj.__name__} differs from tests/test_extending.py"
    assert TOY_YAML.split("\n", 1)[1] in doc
