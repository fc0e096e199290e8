"""Measure the GM confidence early stop against the full computation (README figures).

For every split node of a preset's split phase (seeds given), the full computation is run
(``criterion.early_stop=true`` with a confidence no run reaches, which scores exactly as the
edge-by-edge computation) while recording, at every look, the leading decision and the
sequential test's margins. For each confidence level it reports where the test would have stopped,
whether the decision there equals the full decision, and the minibatches saved.

    .venv/bin/python scripts/early_stop_agreement.py --presets smoke demo --seeds 0 1 2 3
    .venv/bin/python scripts/early_stop_agreement.py --presets smoke --set criterion.batches=30
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir

import gmnas_cli.criteria.gm.stop as gm
from gmnas_cli.cli.app import conf_dir
from gmnas_cli.config import register_configs
from gmnas_cli.stages import split, warmup

LEVELS = (2.0, 3.0, 4.0, 5.0)


def run(preset: str, seed: int, out: Path, extra: list[str]) -> list[dict]:
    """Per split node: its trajectory [(n, decision, margins)] and the full decision."""
    nodes: list[list[tuple]] = []
    original = gm.confidence_margins

    def recording(scorers, scores, edges, cfg, branching):
        margins = original(scorers, scores, edges, cfg, branching)
        order, groups = gm.decision_state(scores, edges, gm.option(cfg.cut))
        n = next(iter(scorers.values())).batches
        if n <= (nodes[-1][-1][0] if nodes and nodes[-1] else 0):
            nodes.append([])
        if not nodes:
            nodes.append([])
        nodes[-1].append((n, (order[0], groups), margins))
        return margins

    gm.confidence_margins = recording
    try:
        register_configs()
        with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
            cfg = compose("config", overrides=[f"experiment={preset}", f"seed={seed}", f"out_dir={out}",
                                               f"name={preset}-s{seed}", "criterion.early_stop=true",
                                               "criterion.confidence=1e12", "quiet=true", *extra])
        warmup.main(cfg)
        split.main(cfg)
    finally:
        gm.confidence_margins = original
    batches, k = int(cfg.criterion.batches), int(cfg.criterion.early_stop_looks)
    looks = set(gm.look_schedule(batches, int(cfg.criterion.early_stop_min_batches), k))
    rows = []
    for traj in nodes:
        full = traj[-1][1]
        row = {"batches": batches, "full": full}
        for c in LEVELS:
            stop = next(((n, d) for n, d, m in traj if n in looks and gm._wins(m, gm.stop_threshold(n, c, k))),
                        (traj[-1][0], full))
            row[c] = {"stopped_at": stop[0], "same": stop[1] == full}
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", nargs="+", default=["smoke", "demo"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3])
    ap.add_argument("--set", nargs="*", default=[], help="extra overrides, e.g. criterion.batches=30")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            rows = [r for s in args.seeds for r in run(preset, s, Path(tmp), args.set)]
            for c in LEVELS:
                same = sum(r[c]["same"] for r in rows)
                used = sum(r[c]["stopped_at"] for r in rows)
                total = sum(r["batches"] for r in rows)
                print(json.dumps({"preset": preset, "overrides": args.set, "seeds": args.seeds, "confidence": c, "split_nodes": len(rows),
                                  "same_decision": same, "minibatches_used": used, "minibatches_full": total,
                                  "saved_pct": round(100 * (1 - used / total), 1)}), flush=True)


if __name__ == "__main__":
    main()
