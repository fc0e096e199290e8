"""Latency look-up tables in ProxylessNAS's layout (``mobile_trim.yaml``), read from a user path.

Keys as ProxylessNAS ``LatencyEstimator.predict`` (docs/mobilenet.md): ``Conv`` (first
conv), ``expanded_conv`` (every MBConv block, with ``expand``, ``kernel``, ``stride`` and
``idskip``), ``Conv_1`` (feature mix) and ``Logits`` (classifier); shapes are ``HxWxC``; each
entry's ``mean`` is in ms. A ``zero`` block costs nothing. The table is never downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from gmnas_cli.infra.errors import ConfigError
from gmnas_cli.spaces.mobilenet.space import parse_op


def _shape(*dims: int) -> str:
    return "x".join(str(d) for d in dims)


def lut_key(ltype: str, inp: tuple[int, ...], out: tuple[int, ...], expand: int | None = None,
            kernel: int | None = None, stride: int | None = None, idskip: int | None = None) -> str:
    infos = [ltype, f"input:{_shape(*inp)}", f"output:{_shape(*out)}"]
    if ltype == "expanded_conv":
        infos += [f"expand:{expand}", f"kernel:{kernel}", f"stride:{stride}", f"idskip:{idskip}"]
    return "-".join(infos)


def read_table(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"algo.latency_table={str(path)!r} does not exist")
    try:
        table = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"algo.latency_table={str(path)!r} is not a readable YAML file ({type(err).__name__})") from None
    if not isinstance(table, dict):
        raise ConfigError(f"algo.latency_table={str(path)!r}: expected a mapping of layer keys to {{mean: ms}}")
    return table


def latency_costs(space: Any, path: Path) -> tuple[float, torch.Tensor]:
    """(fixed ms, ``[num_edges, num_ops]`` ms) of a MobileNet space at its input size."""

    table = read_table(path)

    def get(key: str) -> float:
        entry = table.get(key)
        if not isinstance(entry, dict) or "mean" not in entry:
            raise ConfigError(f"algo.latency_table={str(path)!r} has no entry {key!r} (the table must match "
                              f"space widths and dataset.image_size={space.input_size})")
        return float(entry["mean"])

    size = int(space.input_size)
    s1 = (size - 1) // 2 + 1
    sizes, final = space.block_sizes(size)
    fixed = get(lut_key("Conv", (size, size, space.in_channels), (s1, s1, space.stem)))
    fixed += get(lut_key("expanded_conv", (s1, s1, space.stem), (s1, s1, space.first), 1, 3, 1, 0))
    fixed += get(lut_key("Conv_1", (final, final, space.last_width), (final, final, space.mix)))
    fixed += get(lut_key("Logits", (final, final, space.mix), (space.num_classes,)))
    costs = torch.zeros(len(space.edges), len(space.ops))
    for i, (spec, fsize) in enumerate(zip(space.specs, sizes)):
        out = (fsize - 1) // spec.stride + 1
        for j, o in enumerate(space.ops):
            parsed = parse_op(o)
            if parsed is None or o not in space.available[space.edges[i]]:
                continue
            costs[i, j] = get(lut_key("expanded_conv", (fsize, fsize, spec.c_in), (out, out, spec.c_out), parsed[1],
                                      parsed[0], spec.stride, int(spec.residual)))
    return fixed, costs
