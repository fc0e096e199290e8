"""RSPS, random search with parameter sharing (Li & Talwalkar 2020).

No architecture parameters and no architecture step. Every training minibatch trains one
uniformly random single path inside the op mask (one op per edge, weight 1, only that op
computed); on NAS-Bench-201 a path must connect the input node to the output node through ops
other than `none` (rejection sampling, so the draw stays uniform over connected paths).
``derive`` samples ``eval_archs`` distinct paths inside the mask, scores each with the supernet on
the same minibatches of the architecture half (never the test split): by default the whole half
(``eval_batches=0``), as the official GM-NAS ``projection.py:rsws_project`` evaluates 200 distinct
paths on the whole validation queue; ``eval_batches=K`` keeps the first K minibatches of
``eval_batch_size`` images (0: ``train.batch_size``). The most accurate path wins (ties: lower
loss, then the earlier sample).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from itertools import islice

import torch

from gmnas_cli.algorithms.base import ALGORITHMS, Algorithm, Batch
from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.spaces.base import Active, Arch, Mask

_EDGE = re.compile(r"^(\d+)<-(\d+)$")
MAX_TRIES = 10_000


def reaches_output(usable: dict[str, bool]) -> bool:
    """Whether edges named ``i<-j`` with ``usable[e]`` link node 0 to the highest node.

    Spaces whose edges are not named ``i<-j`` (not cell DAGs of this form) count as connected.
    """
    pairs = {e: _EDGE.match(e) for e in usable}
    if not pairs or any(m is None for m in pairs.values()):
        return True
    links = [(int(m.group(2)), int(m.group(1))) for e, m in pairs.items() if usable[e]]
    out = max(max(int(m.group(1)), int(m.group(2))) for m in pairs.values())
    seen, frontier = {0}, [0]
    while frontier:
        j = frontier.pop()
        for a, b in links:
            if a == j and b not in seen:
                seen.add(b)
                frontier.append(b)
    return out in seen


def path_connected(arch: Arch) -> bool:
    """A single path is connected when its non-`none` edges link input to output."""
    return reaches_output({e: op != "none" for e, op in arch.items()})


def mask_can_connect(mask: Mask) -> bool:
    return reaches_output({e: any(op != "none" for op in ops) for e, ops in mask.items()})


@ALGORITHMS.register("rsps", keys=("eval_archs", "eval_batches", "eval_batch_size"))
class Rsps(Algorithm):
    """Uniform single-path training inside the mask; derivation by sampled validation scores."""

    name = "rsps"
    label = "RSPS"
    has_arch_params = False

    def derive_batch_size(self, train_batch_size: int) -> int:
        """``algo.eval_batch_size`` (0: ``train.batch_size``, the official valid_queue)."""
        return int(self.cfg.eval_batch_size) or train_batch_size

    def sample_path(self, gen: torch.Generator) -> Arch:
        """A uniformly random connected single path inside the mask (any path if none can be)."""
        mask = self.net.mask
        need = mask_can_connect(mask)
        for _ in range(MAX_TRIES):
            arch = self.space.sample_arch(mask, gen)
            if not need or path_connected(arch):
                return arch
        raise ConfigError(f"rsps: no connected path found in {MAX_TRIES} draws inside mask {mask}")

    def path_weights(self, arch: Arch) -> tuple[torch.Tensor, Active]:
        w, active = self.space.arch_weights(arch)
        return w.to(self.mask.device), active

    def train_weights(self, gen: torch.Generator) -> tuple[torch.Tensor, Active | None]:
        return self.path_weights(self.sample_path(gen))

    def eval_weights(self, gen: torch.Generator) -> tuple[torch.Tensor, Active | None]:
        """Supernet validation: one random single path per batch."""
        return self.train_weights(gen)

    @torch.no_grad()
    def derive(self, val_batches: Callable[[], Iterable[Batch]] | None = None,
               gen: torch.Generator | None = None) -> Arch:
        """The best of ``eval_archs`` distinct sampled paths on the architecture half (module docstring)."""
        if val_batches is None:
            raise ConfigError("rsps: derive needs minibatches of the architecture half")
        k = int(self.cfg.eval_batches)
        cached = list(islice(val_batches(), k)) if k > 0 else None
        if cached is not None and not cached:
            raise ConfigError("rsps: the architecture half yields no minibatch to score paths on")
        gen = gen if gen is not None else torch.Generator().manual_seed(0)
        was_training = self.net.training
        self.net.eval()  # as the supernet validation (and AutoDL's search_find_best)
        best: tuple[float, float] | None = None
        best_arch: Arch = {}
        for arch in self.distinct_paths(max(int(self.cfg.eval_archs), 1), gen):
            w, active = self.path_weights(arch)
            correct, loss, n = 0, 0.0, 0
            for x, y in (cached if cached is not None else val_batches()):
                logits = self.net(x, w, active)
                loss += float(torch.nn.functional.cross_entropy(logits.float(), y, reduction="sum"))
                correct += int((logits.argmax(1) == y).sum())
                n += len(y)
            if n == 0:
                raise ConfigError("rsps: the architecture half yields no minibatch to score paths on")
            key = (correct / n, -loss / n)
            if best is None or key > best:
                best, best_arch = key, arch
        self.net.train(was_training)
        return best_arch

    def distinct_paths(self, count: int, gen: torch.Generator) -> list[Arch]:
        """Up to ``count`` distinct connected paths (fewer only if the mask holds fewer)."""
        seen: dict[str, Arch] = {}
        for _ in range(MAX_TRIES):
            if len(seen) >= count:
                break
            arch = self.sample_path(gen)
            seen.setdefault(self.space.arch_to_str(arch), arch)
        return list(seen.values())
