"""The NAS-Bench-301 surrogate (YAHPO Gym ``nb301`` v2, ONNX) for the DARTS space (paper Table 4 space).

``benchmark.path`` is the folder holding ``model_v2.onnx`` and ``encoding_v2.json``; ``onnxruntime`` is an
optional dependency imported on first use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from gmnas_cli.benchmarks.base import Benchmark, cfg_get
from gmnas_cli.benchmarks.genotype import Cell, parse_genotype
from gmnas_cli.infra.errors import ConfigError, StageError

_PREFIX = "NetworkSelectorDatasetInfo_COLON_darts_COLON_"
# The 34 categorical inputs in the model's order (benchmarks README).
INPUT_NAMES = ([f"edge_normal_{i}" for i in range(14)] + [f"edge_reduce_{i}" for i in range(14)]
               + [f"inputs_node_normal_{k}" for k in (3, 4, 5)] + [f"inputs_node_reduce_{k}" for k in (3, 4, 5)])
_EDGE_START = {2: 0, 3: 2, 4: 5, 5: 9}  # first edge id of intermediate node k
_NA = "#na#"


def encode_cell(cell: Cell, name: str) -> dict[str, str]:
    """Active inputs of one cell: ``edge_<name>_<id>`` -> op, ``inputs_node_<name>_<k>`` -> ``"a_b"``."""
    out: dict[str, str] = {}
    for i, k in enumerate(range(2, 6)):
        pair = cell[2 * i : 2 * i + 2]
        inputs = sorted(j for _, j in pair)
        if inputs[0] == inputs[1] or not 0 <= inputs[0] < inputs[1] < k:
            raise StageError(f"nb301_surrogate: node {k} of the {name} cell needs two distinct inputs "
                             f"in 0..{k - 1}, got {[j for _, j in pair]}")
        for op, j in pair:
            out[f"edge_{name}_{_EDGE_START[k] + j}"] = op
        if k >= 3:
            out[f"inputs_node_{name}_{k}"] = f"{inputs[0]}_{inputs[1]}"
    return out


class NB301Surrogate(Benchmark):
    """Predicts validation accuracy (%) and loss of a DARTS genotype at ``epoch``."""

    name = "nb301_surrogate"
    spaces = ("darts",)

    def __init__(self, folder: str | Path, epoch: int = 98) -> None:
        self.folder = Path(folder)
        self.epoch = int(epoch)
        if not 1 <= self.epoch <= 98:
            raise ConfigError(f"benchmark.epoch={self.epoch}: the nb301 surrogate covers epochs 1..98")
        model, enc = self.folder / "model_v2.onnx", self.folder / "encoding_v2.json"
        for f in (model, enc):
            if not f.is_file():
                raise StageError(f"nb301_surrogate: {f} not found (benchmark.path must be the folder holding "
                                 "model_v2.onnx and encoding_v2.json)")
        try:
            self.encoding: dict[str, dict[str, int]] = json.loads(enc.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StageError(f"nb301_surrogate: {enc} is not valid JSON ({exc})") from None
        if not isinstance(self.encoding, dict) or not all(
                isinstance(v, dict) and all(isinstance(c, int) and not isinstance(c, bool) for c in v.values())
                for v in self.encoding.values()):
            raise StageError(f"nb301_surrogate: {enc} is not an encoding (an object of input -> value -> integer code)")
        lacking = [n for n in INPUT_NAMES if _PREFIX + n not in self.encoding]
        if lacking:
            raise StageError(f"nb301_surrogate: {enc} lacks the input {_PREFIX + lacking[0]}")
        try:
            import onnxruntime as ort
        except ImportError:
            raise StageError("nb301_surrogate needs the optional `onnxruntime` package "
                             "(pip install 'gmnas[nb301]')") from None
        self.session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])

    @property
    def metrics(self) -> list[str]:
        return ["val_acc", "val_loss"]

    def encode(self, genotype: Any) -> np.ndarray:
        """``x_cat`` row (int32, 34 codes) of one genotype."""
        g = parse_genotype(genotype)
        active = {**encode_cell(g["normal"], "normal"), **encode_cell(g["reduce"], "reduce")}
        row = []
        for n in INPUT_NAMES:
            codes = self.encoding[_PREFIX + n]
            value = active.get(n, _NA)
            if value not in codes:
                valid = ", ".join(c for c in codes if c != _NA)
                raise StageError(f"nb301_surrogate: {value!r} is not valid for {n}; valid: {valid}")
            row.append(codes[value])
        return np.asarray(row, dtype=np.int32)

    def query_many(self, genotypes: list[Any]) -> list[dict[str, float]]:
        x_cat = np.stack([self.encode(g) for g in genotypes])
        x_cont = np.full((len(genotypes), 1), float(self.epoch), dtype=np.float32)
        out = self.session.run(None, {"x_cat": x_cat, "x_cont": x_cont})[0]
        return [{"val_acc": float(r[0]) * 100.0, "val_loss": float(r[1])} for r in out]

    def query(self, arch: Any) -> dict[str, float]:
        return self.query_many([arch])[0]


def open_nb301(cfg: Any) -> Benchmark:
    path = str(cfg_get(cfg, "path", ""))
    if not path:
        raise ConfigError("benchmark.path is required for benchmark=nb301_surrogate: pass the folder holding "
                          "model_v2.onnx")
    return NB301Surrogate(path, int(cfg_get(cfg, "epoch", 98)))
