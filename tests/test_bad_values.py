"""Property tests (hypothesis): every key of the schema refuses generated out-of-range and ill-typed
values with one line naming the key, before anything is written.

The keys come from walking the dataclass schema, so keys added later are covered automatically.
``GMNAS_WRITE_DOCS=1 pytest tests/test_bad_values.py`` regenerates the per-key table of
``docs/bad-input.md`` from these tests (with the counts of keys covered and values tried).
"""

from __future__ import annotations

import enum
import os
import typing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gmnas_cli.config.bounds import RULES, check_bounds, schema_keys
from gmnas_cli.config.schema import Config
from tests import _bad_values as bv
from tests._reliability import error_lines, hash_files, run_inproc, temp_files
from tests.conftest import REPO, make_cfg

DOC = REPO / "docs" / "bad-input.md"
PER_KEY = 3  # generated values per key and kind (derandomized: the same values on every run)
_FAST = settings(max_examples=PER_KEY, derandomize=True, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])


def test_every_numeric_and_list_key_declares_its_range():
    """A new int/float key, or a list of numbers, must say its range with ``bounded(...)``."""
    def numeric(tp) -> bool:
        tp = bv.base_type(tp)
        return tp in (int, float) or (typing.get_origin(tp) is list and typing.get_args(tp)[0] in (int, float))

    lacking = [k.name for k in schema_keys(Config) if k.bounds is None and numeric(k.type)]
    assert lacking == []


def test_defaults_and_presets_are_in_range():
    """The schema's defaults and every experiment preset pass the bounds and rules."""
    from gmnas_cli.config.bounds import check_rules

    for k in schema_keys(Config):
        if k.bounds is not None and k.default not in (None, "???"):
            items = k.default if isinstance(k.default, list) else [k.default]
            assert k.bounds.admits_length(len(items)) or not isinstance(k.default, list), k.name
            assert all(k.bounds.admits(v) for v in items), k.name
    for preset in sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml")):
        cfg = make_cfg("outputs", f"experiment={preset}")
        check_bounds(cfg, Config)
        check_rules(cfg)


def test_every_key_is_covered():
    """Each key has a generator of bad values (ranges from the schema, ill types from its type)."""
    assert [k.name for k in bv.KEYS if k not in bv.COVERED] == []


CASES = [(k, kind, strat) for k in bv.KEYS for kind, strat in (("out_of_range", bv.out_of_range(k)),
                                                                  ("ill_typed", bv.ill_typed(k))) if strat is not None]


@pytest.mark.parametrize(("key", "kind", "strategy"), CASES, ids=[f"{k.name}-{kind}" for k, kind, _ in CASES])
def test_out_of_range_and_ill_typed_values_are_refused(key, kind, strategy):
    @_FAST
    @given(strategy)
    def check(override: str) -> None:
        msg = bv.attempt(override)
        assert bv.is_one_line(msg), (override, msg)
        assert key.name in msg, (override, msg)

    check()


RANGED = [k for k in bv.KEYS if bv.in_range(k) is not None]


@pytest.mark.parametrize("key", RANGED, ids=lambda k: k.name)
def test_values_inside_the_range_are_accepted(key):
    """The other direction: a declared range refuses nothing inside it (list items, ends included)."""
    from omegaconf import OmegaConf

    @settings(_FAST, max_examples=4)
    @given(bv.in_range(key))
    def check(value) -> None:
        cfg = bv.fresh_cfg()
        OmegaConf.update(cfg, key.name, value, merge=False)
        check_bounds(cfg, Config)

    check()


@pytest.mark.parametrize("name", bv.BAD_NAMES)
def test_names_that_leave_out_dir_are_refused(name):
    msg = bv.attempt(f"name={bv.render(name)}")
    assert bv.is_one_line(msg) and msg.startswith("name="), msg


@_FAST
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.=,+", min_size=1,
               max_size=200).filter(lambda s: s not in (".", "..")))
def test_plain_names_are_accepted(name):
    assert bv.attempt(f"name={bv.render(name)}") is None


@pytest.mark.parametrize(("overrides", "message"), [
    ("train.lr_min=0.1", "train.lr_min=0.1, train.lr=0.025: must satisfy train.lr_min <= train.lr"),
    ("algo.tau_min=2.0", "algo.tau_min=2.0, algo.tau_max=1.0: must satisfy algo.tau_min <= algo.tau_max"),
    ("retrain.lr_min=1.0", "retrain.lr_min=1.0, retrain.lr=0.1: must satisfy retrain.lr_min <= retrain.lr"),
])
def test_cross_key_rules(overrides, message):
    assert bv.attempt(overrides) == message


def test_batch_divisible_by_world_size(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "5")  # smoke: train.batch_size=32
    assert bv.attempt("seed=0") == ("train.batch_size=32, WORLD_SIZE=5: must satisfy "
                                    "train.batch_size % WORLD_SIZE == 0")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert bv.attempt("seed=0") is None


def test_rules_name_keys_of_the_schema():
    """A rule that reads a key the schema lacks would never fire: refuse it here."""
    from gmnas_cli.config.bounds import DERIVED

    names = {k.name for k in schema_keys(Config)}
    for r in RULES:
        assert all(n in names or n in DERIVED for n in r.names()), r.text


# -- through the real console-script code: exit 2, one line, nothing written ---------------------
@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A small experiment ``e`` whose files must survive every refused command unchanged."""
    out = tmp_path_factory.mktemp("made")
    code, err = run_inproc("warmup", *bv.BASE, "warmup_epochs=0", "name=e", f"out_dir={out}")
    assert code == 0, err
    return out


@settings(max_examples=8, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow,
                                 HealthCheck.function_scoped_fixture])
@given(st.sampled_from(bv.COVERED).flatmap(bv.strategy))
def test_refused_on_the_command_line_with_nothing_written(made, override):
    before = hash_files(made)
    name = [] if override.startswith("name=") else ["name=e"]
    code, err = run_inproc("warmup", *bv.BASE, "warmup_epochs=0", f"out_dir={made}", *name, override)
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("gmnas warmup: error: "), (override, err)
    assert hash_files(made) == before and not temp_files(made)


# -- the doc, generated from these tests -------------------------------------------------------
BEGIN, END = "<!-- begin: generated by tests/test_bad_values.py -->", "<!-- end: generated -->"


def _allowed(k) -> str:
    """The allowed values of a key without declared bounds, in words."""
    if k.name in bv.REGISTRY_KEYS:
        return "a registered name"
    if k.type is typing.Any:
        return "checked by its reader"
    if isinstance(k.type, type) and issubclass(k.type, enum.Enum):
        return "one of " + ", ".join(m.name for m in k.type)
    return {bool: "true or false", str: "any text"}.get(k.type, "any " + str(k.type).replace("typing.", ""))


def _cell(text: str | None) -> str:
    return "`" + text.replace("|", "\\|").replace("\x00", "\\x00") + "`" if text else ""


def _table() -> str:
    rows = ["| key | allowed | example | message |", "|---|---|---|---|"]
    for k in bv.KEYS:
        ex = bv.example(k)
        msg = bv.attempt(ex) if ex is not None else None
        allowed = k.bounds.describe() if k.bounds is not None else _allowed(k)
        rows.append(f"| `{k.name}` | {allowed.replace('|', '/')} | {_cell(ex)} | {_cell(msg)} |")
    return "\n".join(rows)


def test_zz_bad_input_doc():
    """Runs last in this file: writes (GMNAS_WRITE_DOCS=1) or checks the generated section of the doc."""
    tried = sum(bv.TRIED.values())
    if os.environ.get("GMNAS_WRITE_DOCS") == "1":
        counts = (f"Keys covered: **{len(bv.COVERED)} of {len(bv.KEYS)}**; values tried by the property tests: "
                  f"**{tried}** (hypothesis, derandomized: {PER_KEY} out-of-range and {PER_KEY} ill-typed values per key "
                  "where the key has a range and a type to violate).")
        section = f"{BEGIN}\n{counts}\n\n{_table()}\n{END}"
        text = DOC.read_text() if DOC.exists() else f"# Bad input\n\n{BEGIN}\n{END}\n"
        head, _, rest = text.partition(BEGIN)
        DOC.write_text(head + section + rest.partition(END)[2])
    text = DOC.read_text()
    missing = [k.name for k in bv.KEYS if f"| `{k.name}` |" not in text]
    assert not missing, f"{DOC} lacks keys {missing}: regenerate with GMNAS_WRITE_DOCS=1 pytest {Path(__file__).name}"
