from __future__ import annotations

import pytest

from glint.index import ConfigError, parse_search_params, parse_spec
from glint.index.config import split_spec
from glint.index.flat import FlatConfig


def test_bare_kind_has_defaults() -> None:
    config = parse_spec("flat")
    assert isinstance(config, FlatConfig)
    assert config.storage == "f32"
    assert config.spec() == "flat:storage=f32"


def test_spec_round_trips_through_canonical_string() -> None:
    config = parse_spec("flat:storage=f16")
    assert parse_spec(config.spec()) == config


def test_config_is_frozen() -> None:
    config = parse_spec("flat")
    with pytest.raises(Exception, match="frozen"):
        config.storage = "f16"  # type: ignore[misc]


def test_nested_spec_is_split_at_top_level() -> None:
    kind, values = split_spec("muvera:r_reps=20,inner=(hnsw:m=32,storage=lvq4x8),k_sim=4")
    assert kind == "muvera"
    assert values == {"r_reps": "20", "inner": "hnsw:m=32,storage=lvq4x8", "k_sim": "4"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("flt", r"unknown index kind 'flt'; valid kinds: flat"),
        ("flat:foo=1", r"unknown key 'foo' for index kind 'flat'; valid keys: storage"),
        ("flat:storage=f8", r"invalid value 'f8' for key 'storage'.*'f32', 'f16' or 'lvq8'"),
        ("flat:", r"no key=value pairs"),
        ("flat:storage", r"'storage' is not key=value"),
        ("flat:storage=f16,storage=f32", r"key 'storage' is given twice"),
        ("muvera:inner=(hnsw:m=3", r"unbalanced '\('"),
        ("muvera:inner=hnsw)", r"unbalanced '\)'"),
        ("", r"index spec is empty"),
    ],
)
def test_bad_specs_name_the_problem(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_spec(spec)


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown index kind 'nope'"):
        parse_spec("nope")


def test_search_params_reject_unknown_keys() -> None:
    assert parse_search_params("flat", {}) is not None
    with pytest.raises(ConfigError, match=r"unknown key 'ef_search' for search on a 'flat' index"):
        parse_search_params("flat", {"ef_search": 10})
