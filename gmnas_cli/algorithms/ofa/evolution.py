"""Evolutionary subnet search under a FLOPs window, restricted to a leaf's op mask.

The loop of OFA's ``EvolutionFinder.run_evolution_search`` (and the GM fork's ``evolution_ws.py``):
a random initial population inside the window; per iteration the best ``parent_ratio`` survive as
parents, ``mutation_ratio`` of a new population are mutants of random parents (each block's kernel
and expand ratio, and each stage's depth, resampled with probability ``mutate_prob``), the rest are
crossovers (every gene from one of two random parents); every child is redrawn until its MACs lie
in ``[lo, hi]``. Kernels are only ever drawn from the mask, so every candidate stays inside it.

Differences to OFA on purpose: draws come from a ``torch.Generator`` seeded per iteration (never
Python's or numpy's global RNG), the state is saved after every iteration (resume gives the same
result), and a candidate's fitness is cached by its config (it is a deterministic function of it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gmnas_cli.infra.errors import StageError
from gmnas_cli.infra.io import read_json, write_json
from gmnas_cli.infra.logging import log
from gmnas_cli.infra.seeding import generator
from gmnas_cli.spaces.base import Mask
from gmnas_cli.spaces.ofa.macs import subnet_mflops
from gmnas_cli.spaces.ofa.space import OfaSpace, Subnet

Fitness = Callable[[Subnet], tuple[float, float]]  # subnet -> (top-1 accuracy, loss) on held-out data


@dataclass
class GeneRanges:
    """The values each gene may take: kernels per block (from the mask), expand ratios, depths."""

    kernels: list[list[int]]
    expands: list[float]
    depths: list[int]

    @classmethod
    def of(cls, space: OfaSpace, mask: Mask) -> GeneRanges:
        return cls([sorted(int(o[1:]) for o in mask[e]) for e in space.edges], list(space.expand_ratios),
                   list(space.depths))


def _pick(values: list, gen: torch.Generator) -> Any:
    return values[int(torch.randint(len(values), (1,), generator=gen))]


def _coin(p: float, gen: torch.Generator) -> bool:
    return float(torch.rand(1, generator=gen)) < p


class Evolution:
    """One leaf's search; ``run`` resumes from ``state_path`` when it exists."""

    def __init__(self, space: OfaSpace, mask: Mask, cfg: Any, image_size: int, fitness: Fitness,
                 seed: int, tag: str, state_path: Path) -> None:
        self.space, self.mask, self.cfg = space, mask, cfg
        self.ranges = GeneRanges.of(space, mask)
        self.fitness, self.seed, self.tag, self.state_path = fitness, seed, tag, state_path
        self.mflops = lambda s: subnet_mflops(space, s, image_size)
        self.lo, self.hi = (float(v) for v in cfg.flops_window)
        lo_m = self.mflops(space.min_subnet(mask))
        hi_m = self.mflops(space.max_subnet(mask))
        if self.hi < lo_m or self.lo > hi_m:
            raise StageError(f"evolution: algo.evolution.flops_window=[{self.lo:g}, {self.hi:g}] MFLOPs lies outside "
                             f"this leaf's range [{lo_m:.2f}, {hi_m:.2f}] at {image_size}px")
        self.cache: dict[str, dict[str, Any]] = {}

    # -- genes ------------------------------------------------------------------------------
    def _valid(self, draw: Callable[[], Subnet], what: str) -> Subnet:
        for _ in range(int(self.cfg.max_tries)):
            sub = draw()
            if self.lo <= self.mflops(sub) <= self.hi:
                return sub
        raise StageError(f"evolution: no {what} inside the FLOPs window [{self.lo:g}, {self.hi:g}] MFLOPs after "
                         f"{int(self.cfg.max_tries)} draws (widen algo.evolution.flops_window)")

    def random_sample(self, gen: torch.Generator) -> Subnet:
        r = self.ranges
        return self._valid(lambda: Subnet([_pick(k, gen) for k in r.kernels], [_pick(r.expands, gen) for _ in r.kernels],
                                          [_pick(r.depths, gen) for _ in self.space.stage_specs]), "random subnet")

    def mutate(self, parent: Subnet, gen: torch.Generator) -> Subnet:
        r, p = self.ranges, float(self.cfg.mutate_prob)

        def draw() -> Subnet:
            ks, e, d = list(parent.ks), list(parent.e), list(parent.d)
            for i in range(len(ks)):
                if _coin(p, gen):
                    ks[i] = _pick(r.kernels[i], gen)
                if _coin(p, gen):
                    e[i] = _pick(r.expands, gen)
            for s in range(len(d)):
                if _coin(p, gen):
                    d[s] = _pick(r.depths, gen)
            return Subnet(ks, e, d)

        return self._valid(draw, "mutant")

    def crossover(self, a: Subnet, b: Subnet, gen: torch.Generator) -> Subnet:
        def draw() -> Subnet:
            return Subnet([_pick([x, y], gen) for x, y in zip(a.ks, b.ks)], [_pick([x, y], gen) for x, y in zip(a.e, b.e)],
                          [_pick([x, y], gen) for x, y in zip(a.d, b.d)])

        return self._valid(draw, "crossover child")

    # -- fitness ----------------------------------------------------------------------------
    def score(self, sub: Subnet) -> dict[str, Any]:
        key = sub.key()
        if key not in self.cache:
            if not self.space.subnet_in_mask(sub, self.mask):
                raise StageError(f"evolution: candidate {sub.to_json()} left the mask")  # never expected
            acc, loss = self.fitness(sub)
            self.cache[key] = {"subnet": sub.to_json(), "mflops": round(self.mflops(sub), 6), "acc": acc,
                               "loss": loss}
        return self.cache[key]

    def _evaluate(self, subs: list[Subnet]) -> list[dict[str, Any]]:
        return [self.score(s) for s in subs]

    # -- loop -------------------------------------------------------------------------------
    def _save(self, it: int, population: list[dict[str, Any]], best: list[float]) -> None:
        write_json(self.state_path, {"iteration": it, "population": population, "best_history": best,
                                     "candidates": list(self.cache.values())})

    def run(self) -> dict[str, Any]:
        """The best candidate found (highest accuracy; ties: lower loss, then the earlier one)."""
        cfg = self.cfg
        pop_size = int(cfg.population)
        n_mut = int(round(float(cfg.mutation_ratio) * pop_size))
        n_par = max(1, int(round(float(cfg.parent_ratio) * pop_size)))
        if self.state_path.exists():
            state = read_json(self.state_path)
            self.cache = {Subnet(**c["subnet"]).key(): c for c in state["candidates"]}
            it, population, best = int(state["iteration"]), state["population"], list(state["best_history"])
            log.info(f"{self.tag}: evolution resumes at iteration {it}/{int(cfg.iterations)}")
        else:
            gen = generator(self.seed, self.tag, "evolution", "init")
            population = self._evaluate([self.random_sample(gen) for _ in range(pop_size)])
            it, best = 0, []
            self._save(it, population, best)
        rank = lambda c: (-c["acc"], c["loss"])  # noqa: E731
        while it < int(cfg.iterations):
            gen = generator(self.seed, self.tag, "evolution", it)
            parents = sorted(population, key=rank)[:n_par]
            best.append(parents[0]["acc"])
            subs = [Subnet(**p["subnet"]) for p in parents]
            children = [self.mutate(subs[int(torch.randint(len(subs), (1,), generator=gen))], gen)
                        for _ in range(n_mut)]
            children += [self.crossover(subs[int(torch.randint(len(subs), (1,), generator=gen))],
                                        subs[int(torch.randint(len(subs), (1,), generator=gen))], gen)
                         for _ in range(pop_size - n_mut)]
            population = parents + self._evaluate(children)
            it += 1
            self._save(it, population, best)
        winner = sorted(population, key=rank)[0]
        return {**winner, "evaluated": len(self.cache), "iterations": it}
