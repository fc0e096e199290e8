"""Generated bad values for every key of the schema, and a cheap, faithful way to try one.

``KEYS`` walks the dataclass schema (``config/bounds.py::schema_keys``), so a key another engineer adds
with ``bounded(...)`` is covered without touching this file. For each key, ``out_of_range(key)`` and
``ill_typed(key)`` are hypothesis strategies of override texts (``key=value`` as typed on the command
line). ``attempt(override)`` applies it the way ``gmnas`` does (Hydra's override parser and merge into
the composed config), then ``validate``; it returns the one-line message, or None if it was accepted.
"""

from __future__ import annotations

import copy
import enum
import math
import types
import typing
from collections import Counter
from functools import cache, lru_cache
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hypothesis import strategies as st
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from gmnas_cli.cli.app import one_line
from gmnas_cli.config.bounds import Bounds, Key, schema_keys
from gmnas_cli.config.schema import Config
from gmnas_cli.infra.errors import ConfigError

KEYS: list[Key] = list(schema_keys(Config))
BASE = ["experiment=smoke"]  # the base config the values are tried on
# Keys whose value names a registry entry: any other identifier is out of range.
REGISTRY_KEYS = ("space.name", "algo.name", "criterion.name", "dataset.name")
_BOOL_WORDS = {"true", "false", "yes", "no", "on", "off", "y", "n", "1", "0", "null", "none", "nan", "inf",
               "infinity"}
TRIED: Counter[str] = Counter()  # key -> values tried (the bad-input doc reports the totals)


@lru_cache(maxsize=1)
def base_cfg() -> DictConfig:
    from tests.conftest import make_cfg

    return make_cfg("outputs", *BASE)


_PARSER = OverridesParser.create()


def fresh_cfg() -> DictConfig:
    """A private copy of the composed base config."""
    return copy.deepcopy(base_cfg())


def attempt(override: str, command: str = "warmup") -> str | None:
    """The one-line error ``gmnas command <BASE> override`` reports at start-up, or None if accepted."""
    from gmnas_cli.pipeline.validate import validate

    TRIED[override.split("=", 1)[0]] += 1
    cfg = fresh_cfg()
    try:
        ConfigLoaderImpl._apply_overrides_to_config(_PARSER.parse_overrides([override]), cfg)
        validate(cfg, command)
    except (HydraException, OmegaConfBaseException) as err:
        return one_line(err)
    except ConfigError as err:
        return str(err)
    return None


# -- rendering a value as typed on the command line -------------------------------------------
def render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return f"'{value}'"  # quoted: Hydra keeps it a string (the alphabets hold no quote or backslash)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{render(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


# Text that survives the command line unchanged: printable ASCII but quotes, backslash and ``$``
# (interpolation), plus NUL and a non-ASCII letter.
_TEXT = st.text(alphabet=st.sampled_from([chr(c) for c in range(32, 127) if chr(c) not in "'\"\\$"] + ["\x00", "é"]),
                min_size=1, max_size=40)
_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
# Names that must never become a folder outside out_dir.
BAD_NAMES = ["..", ".", "../x", "../../x", "/abs/path", "a/b", "a\\b", "a\x00b", "x" * 201, " a", "a b", "~", "$HOME"]


def base_type(tp: Any) -> Any:
    """``X`` of ``Optional[X]`` / ``X | None`` (null is then a valid value), else ``tp``."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else Any
    return tp


def _scalar_type(tp: Any) -> Any:
    tp = base_type(tp)
    return typing.get_args(tp)[0] if typing.get_origin(tp) is list else tp


def _is_list(tp: Any) -> bool:
    return typing.get_origin(base_type(tp)) is list


def _out_of_range_scalar(tp: Any, b: Bounds, key: str) -> st.SearchStrategy | None:
    """Scalars outside ``b`` (filtered through ``b.admits`` so edge cases such as -0.0 stay honest)."""
    opts: list[st.SearchStrategy] = []
    if tp is int:
        if b.ge is not None:
            opts.append(st.integers(max_value=math.ceil(b.ge) - 1, min_value=-(2**70)))
        if b.gt is not None:
            opts.append(st.integers(max_value=math.floor(b.gt), min_value=-(2**70)))
        if b.le is not None:
            opts.append(st.integers(min_value=math.floor(b.le) + 1, max_value=2**70))
        if b.lt is not None:
            opts.append(st.integers(min_value=math.ceil(b.lt), max_value=2**70))
        if b.choices is not None:
            opts.append(st.integers(min_value=-(2**40), max_value=2**40))
    elif tp is float:
        finite = {"allow_nan": False, "allow_infinity": False}
        if b.ge is not None:
            opts.append(st.floats(max_value=b.ge, exclude_max=True, **finite))
        if b.gt is not None:
            opts.append(st.floats(max_value=b.gt, **finite))
        if b.le is not None:
            opts.append(st.floats(min_value=b.le, exclude_min=True, **finite))
        if b.lt is not None:
            opts.append(st.floats(min_value=b.lt, **finite))
        if opts:
            opts.append(st.sampled_from([math.nan, math.inf, -math.inf]))
    elif tp is str:
        if b.choices is not None:
            opts.append(_WORD)
        if b.pattern is not None:
            opts.append(st.sampled_from(BAD_NAMES) if key == "name" else _TEXT)
            opts.append(_TEXT)
    if not opts:
        return None
    return st.one_of(opts).filter(lambda v: not b.admits(v))


def _good_items(key: Key, b: Bounds) -> st.SearchStrategy:
    """Items inside the bounds: the default's items, else the choices, else a small admitted number."""
    if isinstance(key.default, list) and key.default:
        return st.sampled_from(key.default)
    if b.choices:
        return st.sampled_from(list(b.choices))
    tp = _scalar_type(key.type)
    if tp is int:
        lo = int(b.ge if b.ge is not None else (b.gt + 1 if b.gt is not None else 0))
        return st.integers(min_value=lo, max_value=lo + 5)
    if tp is float:
        lo = b.ge if b.ge is not None else (b.gt if b.gt is not None else 0.0)
        hi = b.le if b.le is not None else (b.lt if b.lt is not None else lo + 1.0)
        return st.floats(min_value=lo, max_value=hi, exclude_min=b.gt is not None, exclude_max=b.lt is not None)
    return st.just("none")


def out_of_range(key: Key) -> st.SearchStrategy[str] | None:
    """Override texts with a well-typed value outside the key's declared range (None: no range)."""
    if key.name in REGISTRY_KEYS:
        return _WORD.filter(lambda w: w not in _registry(key.name)).map(lambda w: f"{key.name}={render(w)}")
    if key.name in _ANY_BAD:
        return st.sampled_from(_ANY_BAD[key.name]).map(lambda v: f"{key.name}={v}")
    b = key.bounds
    if b is None:
        return None
    tp = _scalar_type(key.type)
    bad_item = _out_of_range_scalar(tp, b, key.name)
    if not _is_list(key.type):
        return None if bad_item is None else bad_item.map(lambda v: f"{key.name}={render(v)}")
    good = _good_items(key, b)
    opts = []
    if b.min_len:
        opts.append(st.lists(good, max_size=b.min_len - 1))
    if b.max_len is not None:
        opts.append(st.lists(good, min_size=b.max_len + 1, max_size=b.max_len + 3))
    if bad_item is not None:
        lo = max((b.min_len or 1) - 1, 0)
        hi = max(lo, (b.max_len or 4) - 1)
        opts.append(st.tuples(st.lists(good, min_size=lo, max_size=hi), bad_item, st.integers(0, 8)).map(
            lambda t: t[0][: t[2]] + [t[1]] + t[0][t[2]:]))
    return st.one_of(opts).map(lambda v: f"{key.name}={render(v)}") if opts else None


def ill_typed(key: Key) -> st.SearchStrategy[str] | None:
    """Override texts whose value has the wrong type for the key (None: the key takes any type)."""
    tp = base_type(key.type)
    if tp is Any:
        return None
    words = _WORD.filter(lambda w: w.lower() not in _BOOL_WORDS)
    if _is_list(tp) or typing.get_origin(tp) is dict:
        return st.one_of(words.map(render), st.integers().map(str)).map(lambda v: f"{key.name}={v}")
    if tp in (int, float):
        opts = [words.map(render), st.lists(st.integers(), min_size=1, max_size=3).map(render),
                st.sampled_from(["true", "false"])]
        if tp is int:
            opts.append(st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f != int(f)).map(repr))
        return st.one_of(opts).map(lambda v: f"{key.name}={v}")
    if tp is bool:
        return st.one_of(words.map(render), st.lists(st.booleans(), min_size=1).map(render)).map(
            lambda v: f"{key.name}={v}")
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        names = {m.name for m in tp} | {f"{tp.__name__}.{m.name}" for m in tp}
        return st.one_of(words.filter(lambda w: w not in names).map(render), st.sampled_from(["[a]", "3"])).map(
            lambda v: f"{key.name}={v}")
    if tp is str:
        return st.one_of(st.lists(_WORD, min_size=1, max_size=3).map(render),
                         st.dictionaries(_WORD, st.integers(0, 9), min_size=1, max_size=2).map(render)).map(
            lambda v: f"{key.name}={v}")
    return None


# Keys typed ``Any`` (one value or a list): bad values their validator must refuse.
_ANY_BAD = {
    "branching": ["1", "0", "-2", "'x'", "[2,'a']", "[2,3,2]", "2.5", "99"],
    "leaf": ["-1", "'x'", "1.5", "true", "[0]"],
    "criterion.edge_selection": ["'foo'", "['9<-9']", "['1<-0']", "3"],
}


@cache
def _registry(key: str) -> tuple[str, ...]:
    from gmnas_cli.algorithms import ALGORITHMS
    from gmnas_cli.criteria import CRITERIA
    from gmnas_cli.data import DATASETS
    from gmnas_cli.spaces import SPACES

    reg = {"space.name": SPACES, "algo.name": ALGORITHMS, "criterion.name": CRITERIA, "dataset.name": DATASETS}[key]
    return tuple(reg.names())


for _k in REGISTRY_KEYS:  # imported now, not while hypothesis generates values
    _registry(_k)


def strategy(key: Key) -> st.SearchStrategy[str] | None:
    opts = [s for s in (out_of_range(key), ill_typed(key)) if s is not None]
    return st.one_of(opts) if opts else None


COVERED = [k for k in KEYS if strategy(k) is not None]


def example(key: Key) -> str | None:
    """One deterministic bad override of ``key`` for the doc table (the nearest value out of range)."""
    if key.name in REGISTRY_KEYS:
        return f"{key.name}='nosuch'"
    if key.name in _ANY_BAD:
        return f"{key.name}={_ANY_BAD[key.name][0]}"
    b, tp = key.bounds, _scalar_type(key.type)
    if b is not None:
        v: Any = None
        if b.choices is not None:
            v = "nosuch" if tp is str else max(int(c) for c in b.choices) + 1
        elif b.pattern is not None:
            v = "../x" if key.name == "name" else "a/b"
        elif b.ge is not None:
            v = (math.ceil(b.ge) - 1) if tp is int else -1.0 if b.ge == 0 else b.ge - 1
        elif b.gt is not None:
            v = math.floor(b.gt) if tp is int else float(b.gt) if b.gt == 0 else b.gt / 2 if b.gt > 0 else b.gt - 1
        elif b.le is not None:
            v = b.le + 1
        elif b.lt is not None:
            v = b.lt
        if _is_list(key.type) and v is not None:
            good = list(key.default) if isinstance(key.default, list) else []
            return f"{key.name}={render(good[:1] + [v])}"
        if v is None and _is_list(key.type) and b.min_len:
            return f"{key.name}=[]"
        if v is not None:
            return f"{key.name}={render(v)}"
    tp = base_type(key.type)
    ill = {int: "abc", float: "abc", bool: "maybe", str: "[a,b]"}.get(tp)
    if ill is None and (_is_list(tp) or typing.get_origin(tp) is dict):
        ill = "abc"
    if ill is None and isinstance(tp, type) and issubclass(tp, enum.Enum):
        ill = "nosuch"
    return None if ill is None else f"{key.name}={ill}"


def is_one_line(msg: str | None) -> bool:
    return msg is not None and msg.strip() != "" and "\n" not in msg and "\r" not in msg


def in_range(key: Key) -> st.SearchStrategy | None:
    """Values inside a numeric key's declared range (or set), to show the bounds refuse nothing valid."""
    b = key.bounds
    tp = _scalar_type(key.type)
    if b is None or b.pattern is not None or tp not in (int, float, str) or (tp is str and b.choices is None):
        return None
    if b.choices is not None:
        item: st.SearchStrategy = st.sampled_from(list(b.choices))
    elif tp is int:
        lo = math.ceil(b.ge) if b.ge is not None else (math.floor(b.gt) + 1 if b.gt is not None else -(10**9))
        hi = math.floor(b.le) if b.le is not None else (math.ceil(b.lt) - 1 if b.lt is not None else 10**9)
        item = st.integers(min_value=lo, max_value=hi)
    else:
        lo = b.ge if b.ge is not None else b.gt
        hi = b.le if b.le is not None else b.lt
        item = st.floats(min_value=lo, max_value=hi, exclude_min=b.ge is None and b.gt is not None,
                         exclude_max=b.le is None and b.lt is not None, allow_nan=False, allow_infinity=False)
    if not _is_list(key.type):
        return item
    return st.lists(item, min_size=b.min_len or 0, max_size=b.max_len if b.max_len is not None else 4)
