"""`gmnas arch`: parameters and MACs of any space's architecture string, benchmark figures, and a
one-line error naming the first bad token of a bad string."""

from __future__ import annotations

import csv

import pytest

from tests._reliability import error_lines, run_inproc
from tests.conftest import DARTS_V2, SHARED
from tests.test_mobilenet import RELEASED

NB201_BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
NATS = SHARED / "nb201" / "nats_bench_test_acc.csv"
V11 = SHARED / "nb201" / "nb201_cifar10_valid_test.csv"
NB301 = SHARED / "nb301"


def figures(capsys, *args: str) -> dict[str, float]:
    """The last stdout line ``params_m=... macs_m=... <metric>=...`` as a dict."""
    capsys.readouterr()
    code, err = run_inproc("arch", *args)
    assert code == 0, err
    last = capsys.readouterr().out.strip().splitlines()[-1]
    return {k: float(v) for k, v in (item.split("=") for item in last.split())}


def test_darts_v2_has_3_35m_parameters_and_macs_scale_with_the_input(capsys):
    f32 = figures(capsys, "space=darts", "dataset=cifar10", f"arch={DARTS_V2}")
    assert round(f32["params_m"], 2) == 3.35  # DARTS (Liu et al. 2019), C=36, 20 cells
    f16 = figures(capsys, "space=darts", "dataset=cifar10", "dataset.image_size=16", f"arch={DARTS_V2}")
    assert f16["params_m"] == f32["params_m"]
    assert 3.5 < f32["macs_m"] / f16["macs_m"] <= 4.0  # convolutions: 4x the pixels


@pytest.mark.skipif(not V11.exists(), reason="shared NAS-Bench-201 tables absent")
@pytest.mark.parametrize("arch", [NB201_BEST, "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                                  "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|none~1|"
                                  "nor_conv_3x3~2|"])
def test_nb201_parameters_equal_the_benchmarks(capsys, arch):
    with open(V11, newline="") as fh:
        params = {row["arch"]: float(row["params_m"]) for row in csv.DictReader(fh)}
    got = figures(capsys, "space=nb201", "dataset=cifar10", f"arch={arch}")
    assert got["params_m"] == pytest.approx(params[arch], abs=1e-6)


@pytest.mark.skipif(not NATS.exists(), reason="shared NAS-Bench-201 tables absent")
def test_nb201_benchmark_figures(capsys):
    got = figures(capsys, "space=nb201", f"arch={NB201_BEST}", "benchmark=nb201", f"benchmark.path={NATS}")
    with open(NATS, newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["ArchitectureString"] == NB201_BEST)
    assert got["cifar10_test"] == pytest.approx(float(row["CIFAR10TestAccuracy200Epochs"]), abs=1e-4)
    assert got["cifar100_test"] == pytest.approx(float(row["CIFAR100TestAccuracy200Epochs"]), abs=1e-4)
    assert got["imagenet16_test"] == pytest.approx(float(row["ImageNetTestAccuracy200Epochs"]), abs=1e-4)


@pytest.mark.skipif(not (NB301 / "encoding_v2.json").exists(), reason="shared NB301 surrogate absent")
def test_darts_surrogate_figure(capsys):
    pytest.importorskip("onnxruntime")
    got = figures(capsys, "space=darts", f"arch={DARTS_V2}", "benchmark=nb301_surrogate",
                  f"benchmark.path={NB301}")
    assert 90 < got["val_acc"] < 95  # the README of the shared surrogate: about 0.929 at epoch 98


@pytest.mark.parametrize(("space", "arch", "message"), [
    ("nb201", "|nor_conv_3x3~0|+|nor_conv_3x3~0|conv_7x7~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
     "unknown op 'conv_7x7' in token 'conv_7x7~1' (node 2)"),
    ("nb201", "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~2|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
     "token 'nor_conv_3x3~2' (node 2) needs an input ~0..~1"),
    ("nb201", "|nor_conv_3x3~0|+|nor_conv_3x3~0|", "2 node(s) joined by '+', expected 3"),
    ("darts", DARTS_V2.replace("('dil_conv_3x3', 2)", "('sep_conv_9x9', 2)"),
     "unknown op 'sep_conv_9x9' in normal item ('sep_conv_9x9', 2)"),
    ("darts", DARTS_V2.replace("normal=[", "normal=[[", 1), "syntax error at character"),
])
def test_bad_strings_name_the_first_bad_token(capsys, space, arch, message):
    code, err = run_inproc("arch", f"space={space}", f"arch={arch}")
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("gmnas arch: error: arch: not a ") and message in lines[0], lines[0]


def rows(capsys, *args: str) -> tuple[dict[str, float], str]:
    """(the figures line, the printed table) of a successful ``gmnas arch``."""
    capsys.readouterr()
    code, err = run_inproc("arch", *args)
    assert code == 0, err
    out = capsys.readouterr().out
    last = out.strip().splitlines()[-1]
    return {k: float(v) for k, v in (item.split("=") for item in last.split())}, out


def test_mobilenet_without_a_dataset_uses_imagenet_input(capsys):
    """The released GM + ProxylessNAS network (docs/mobilenet.md): 529.7 M MACs, 4.895 M parameters
    at the space's natural input (224 px, 3 channels, 1000 classes), with no dataset= given."""
    got, out = rows(capsys, "space=mobilenet", f"arch={RELEASED}")
    assert round(got["macs_m"], 1) == 529.7 and round(got["params_m"], 3) == 4.895
    assert "3x224x224" in out and "ProxylessNAS MobileNet" in out and "C=36" not in out


def test_a_named_dataset_replaces_the_natural_input(capsys):
    got, out = rows(capsys, "space=mobilenet", "dataset=cifar10", f"arch={RELEASED}")
    assert "3x32x32" in out and "dataset=cifar10" in out
    assert got["params_m"] < 4.895  # 10 classes instead of 1000


def test_ofa_mbv3_needs_no_algo_and_names_its_network(capsys):
    """OFA's largest w1.2 subnet: 843.10 M MACs at 224 px (the supernet bound, tests/test_ofa.py)."""
    largest = " | ".join(["k7e6 k7e6 k7e6 k7e6"] * 5)
    got, out = rows(capsys, "space=ofa_mbv3", f"arch={largest}")
    assert round(got["macs_m"], 2) == 843.10
    assert "OFA MobileNetV3" in out and "C=36" not in out


def test_darts_network_row_names_darts_network(capsys):
    _, out = rows(capsys, "space=darts", "dataset=cifar10", f"arch={DARTS_V2}")
    assert "DARTS NetworkCIFAR: C=36, 20 cells" in out


def test_nb201_network_row_names_the_cell_network(capsys):
    _, out = rows(capsys, "space=nb201", f"arch={NB201_BEST}")
    assert "NAS-Bench-201 network" in out and "3x32x32" in out
