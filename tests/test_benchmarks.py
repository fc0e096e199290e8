"""Benchmark lookups against the shared real files (skipped when they are absent)."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from gmnas_cli.benchmarks import BENCHMARKS, load_benchmark, parse_genotype
from gmnas_cli.config.schema import BenchmarkConfig
from gmnas_cli.infra.errors import ConfigError, StageError
from tests.conftest import DARTS_V2, REPO, SHARED

NATS = SHARED / "nb201" / "nats_bench_test_acc.csv"
V11 = SHARED / "nb201" / "nb201_cifar10_valid_test.csv"
NB301 = SHARED / "nb301"
BEST_C10 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def preset(name: str, **values: object) -> object:
    """A ``conf/benchmark/<name>.yaml`` preset merged into the schema, with overrides."""
    return OmegaConf.merge(OmegaConf.structured(BenchmarkConfig), OmegaConf.load(REPO / "conf" / "benchmark" /
                                                                                 f"{name}.yaml"), values)


def need(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"shared benchmark file {path} is absent (set GMNAS_BENCHMARKS)")


@pytest.fixture(scope="module")
def nats():
    need(NATS)
    return load_benchmark(preset("nb201", path=str(NATS)))


def test_registry_and_none() -> None:
    assert set(BENCHMARKS.names()) >= {"none", "nb201", "nb301_surrogate"}
    assert load_benchmark(OmegaConf.structured(BenchmarkConfig)) is None
    with pytest.raises(ConfigError, match="valid: nb201, nb301_surrogate, none"):
        load_benchmark({"name": "nb999"})


def test_preset_requires_path() -> None:
    with pytest.raises(ConfigError, match="benchmark.path is required"):
        load_benchmark(preset("nb201"))


def test_nats_lookup(nats) -> None:
    assert nats.metrics == ["cifar10_test", "cifar100_test", "imagenet16_test"]
    figs = nats.query(BEST_C10)
    assert round(figs["cifar10_test"], 2) == 94.37
    spaced = "  " + BEST_C10.replace("+", " + ") + "\n"
    assert nats.query(spaced) == figs


def test_nats_best(nats) -> None:
    arch, value = nats.best("cifar100_test")
    assert round(value, 2) == 73.51
    assert nats.query(arch)["cifar100_test"] == value
    assert round(nats.best("cifar10_test")[1], 2) == 94.37
    with pytest.raises(StageError, match="unknown metric"):
        nats.best("nope")


def test_nats_unknown_arch(nats) -> None:
    bad = BEST_C10.replace("nor_conv_1x1~2", "conv_9x9~2")
    with pytest.raises(StageError, match="not in .*nats_bench_test_acc.csv") as err:
        nats.query(bad)
    assert "\n" not in str(err.value)


def test_missing_file_and_column(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="not found"):
        load_benchmark(preset("nb201", path=str(tmp_path / "missing.csv")))
    table = tmp_path / "t.csv"
    table.write_text("arch,acc\n|a~0|,1.0\n")
    with pytest.raises(StageError, match=r"column 'ArchitectureString' not in .*available: arch, acc"):
        load_benchmark(preset("nb201", path=str(table)))
    api_file = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
    api_file.write_bytes(b"")
    with pytest.raises(ConfigError, match="pass benchmark.trust_pickle=true"):  # pickles: opt in first
        load_benchmark({"name": "nb201", "path": str(api_file)})
    with pytest.raises(StageError, match="nats_bench"):
        load_benchmark({"name": "nb201", "path": str(api_file), "trust_pickle": True})


def test_v11_table() -> None:
    need(V11)
    bench = load_benchmark(preset("nb201_v11", path=str(V11)))
    figs = bench.query(BEST_C10)
    assert round(figs["cifar10_test"], 2) == 94.37
    assert set(figs) == {"cifar10_valid", "cifar10_test", "cifar10_valid_ori_test", "params_m"}
    assert 0 < figs["params_m"] < 2


def test_parse_genotype_forms() -> None:
    g = parse_genotype(DARTS_V2)
    assert g["normal"][7] == ("dil_conv_3x3", 2) and g["normal_concat"] == [2, 3, 4, 5]
    as_dict = {"normal": [list(x) for x in g["normal"]], "normal_concat": [2, 3, 4, 5],
               "reduce": [list(x) for x in g["reduce"]], "reduce_concat": [2, 3, 4, 5]}
    assert parse_genotype(as_dict) == g
    for bad in ("__import__('os').system('true')", "Genotype(normal=[('a', 0)])", "Genotype(normal=open('x'))"):
        with pytest.raises(StageError, match="not a DARTS genotype"):
            parse_genotype(bad)


def test_nb301_darts_v2() -> None:
    pytest.importorskip("onnxruntime")
    need(NB301 / "model_v2.onnx")
    bench = load_benchmark(preset("nb301_surrogate", path=str(NB301)))
    figs = bench.query(DARTS_V2)
    assert set(figs) == {"val_acc", "val_loss"}
    assert figs["val_acc"] / 100 == pytest.approx(0.929, abs=0.002)
    as_dict = parse_genotype(DARTS_V2)
    assert bench.query(as_dict) == pytest.approx(figs)
    skip = {"normal": [["skip_connect", 0], ["skip_connect", 1]] * 4,
            "reduce": [["skip_connect", 0], ["skip_connect", 1]] * 4}
    assert bench.query(skip)["val_acc"] / 100 == pytest.approx(0.899, abs=0.002)
    with pytest.raises(StageError, match="'none' is not valid"):
        bench.query({"normal": [["none", 0], ["skip_connect", 1]] * 4, "reduce": skip["reduce"]})
