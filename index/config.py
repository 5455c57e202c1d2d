"""The spec grammar, and the two kinds of typed settings every index kind declares.

A spec is one string, ``KIND[:key=value,...]``; a value may be a nested spec in parentheses
(``muvera:r_reps=20,inner=(hnsw:m=32)``). :func:`split_spec` cuts it into the kind and raw
values; the kind's :class:`IndexConfig` subclass (found through :mod:`glint.index.registry`)
validates them, and :meth:`IndexConfig.spec` turns a config back into its canonical string.

Build configs and search parameters are separate types. A kind's :class:`SearchParams`
subclass declares the keys a search takes; fields made with :func:`candidate_count` set how
many candidates a query examines, which is what a server caps (:meth:`SearchParams.capped`).
An index turns what a caller gives into a *resolved* :class:`SearchParams` once per search
(``Index.resolve_params``): validated, with every default filled in for that ``k``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError
from typing_extensions import Self

from .errors import ConfigError, OverLimitError

__all__ = [
    "IndexConfig",
    "SearchParams",
    "candidate_count",
    "check_keys",
    "split_spec",
    "validate_model",
]

_CANDIDATE_TAG = "glint_candidate_count"


class IndexConfig(BaseModel):
    """Base of every build config: frozen, and unknown keys are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: ClassVar[str]

    def spec(self) -> str:
        """The canonical spec string: the kind and every key, in declaration order."""
        parts = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, IndexConfig):
                text = f"({value.spec()})"
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = str(value)
            parts.append(f"{name}={text}")
        return f"{self.kind}:{','.join(parts)}" if parts else self.kind

    def manifest_dict(self) -> dict[str, Any]:
        """The config as the manifest stores it (read back by ``config_from_dict``)."""
        return self.model_dump(mode="json")


def candidate_count(*, le: int, description: str, default: int | None = None) -> Any:
    """A search parameter that sets how many candidates a query examines (>= 1, <= ``le``):
    the fields a server's candidate cap applies to."""
    return Field(
        default=default,
        ge=1,
        le=le,
        description=description,
        json_schema_extra={_CANDIDATE_TAG: True},
    )


class SearchParams(BaseModel):
    """Base of every kind's search parameters: frozen, unknown keys refused.

    A parsed instance remembers which keys the caller gave (pydantic's ``model_fields_set``,
    None values left out); a resolved one (:meth:`resolved`) also holds every default for the
    ``k`` it was resolved for, so kernels never look a default up again.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    _resolved_for: int | None = PrivateAttr(default=None)
    _cap: int | None = PrivateAttr(default=None)

    @classmethod
    def parse(
        cls,
        raw: Mapping[str, Any] | None,
        *,
        what: str,
        inner: str | None = None,
        cap: int | None = None,
    ) -> Self:
        """Validate ``raw`` (unknown keys name the valid ones); a None value counts as not
        given. ``inner`` names the wrapped kind, for a kind that wraps another. A candidate
        count given over ``cap`` is refused first, whatever else is wrong with it."""
        raw = raw or {}
        refuse_reserved(raw)
        check_keys(cls, raw, what)
        if cap is not None:
            refuse_over_cap(cls, raw, cap)
        out: Self = validate_model(cls, {key: v for key, v in raw.items() if v is not None}, what)
        return out

    @property
    def resolved_for(self) -> int | None:
        """The ``k`` whose defaults this instance holds, or None if it is not resolved."""
        return self._resolved_for

    @property
    def cap(self) -> int | None:
        """The candidate cap applied (:meth:`capped`), if any."""
        return self._cap

    def given(self) -> dict[str, Any]:
        """The keys the caller set, with their values (the mapping it could have sent)."""
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}

    def resolved(self, k: int, defaults: Mapping[str, Any]) -> Self:
        """A copy holding ``defaults`` for the keys the caller left out, resolved for ``k``."""
        values = {name: getattr(self, name) for name in type(self).model_fields}
        values.update({key: v for key, v in defaults.items() if key not in self.model_fields_set})
        return self._rebuilt(values, k)

    @classmethod
    def candidate_fields(cls) -> tuple[str, ...]:
        """The fields made with :func:`candidate_count`."""
        return _candidate_fields(cls)

    @classmethod
    def limit(cls, name: str) -> int | None:
        """The largest value field ``name`` accepts, if it has a bound."""
        for rule in cls.model_fields[name].metadata:
            bound = getattr(rule, "le", None)
            if bound is not None:
                return int(bound)
        return None

    def capped(self, cap: int) -> Self:
        """This search with its candidate counts bounded by ``cap``: a default over it is
        lowered to it (and to the field's own bound), a value the caller gave over it is
        refused with :class:`OverLimitError`."""
        lowered: dict[str, Any] = {}
        for name in self.candidate_fields():
            value = getattr(self, name)
            if value is None or value <= cap:
                continue
            if name in self.model_fields_set:
                raise over_cap(name, cap)
            limit = self.limit(name)
            lowered[name] = cap if limit is None else min(cap, limit)
        if not lowered and self._cap == cap:
            return self
        values = {name: getattr(self, name) for name in type(self).model_fields}
        return self._rebuilt({**values, **lowered}, self._resolved_for, cap)

    def _rebuilt(
        self, values: dict[str, Any], resolved_for: int | None, cap: int | None = None
    ) -> Self:
        # Values are validated already (or are the kind's own defaults): no second validation,
        # and the caller's keys stay the ones it gave.
        out = type(self).model_construct(_fields_set=set(self.model_fields_set), **values)
        out._resolved_for = resolved_for
        out._cap = cap if cap is not None else self._cap
        return out


#: Names of a search's own arguments: as search parameters they are refused by name.
RESERVED_PARAMS = ("queries", "k", "threads")


def refuse_reserved(raw: Mapping[str, Any]) -> None:
    for key in RESERVED_PARAMS:
        if key in raw:
            raise ConfigError(
                f"unknown search parameter {key!r}: k, the queries and the threads are the "
                "search's own arguments (fields of a REST request), not search parameters"
            )


def refuse_over_cap(model: type[SearchParams], raw: Mapping[str, Any], cap: int) -> None:
    """Refuse a candidate count in ``raw`` over ``cap``, read as a number in any form ("300",
    300.0, "3e2"), before the field's own checks: over the cap is the answer that counts."""
    for name in model.candidate_fields():
        value = raw.get(name)
        if value is None or isinstance(value, bool):
            continue
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            continue  # not a number: the field's own validation says so
        if number > cap:
            raise over_cap(name, cap)


def over_cap(name: str, cap: int) -> OverLimitError:
    return OverLimitError(f"parameter '{name}': must be at most {cap}", param=name)


@functools.cache
def _candidate_fields(model: type[SearchParams]) -> tuple[str, ...]:
    return tuple(
        name
        for name, field in model.model_fields.items()
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get(_CANDIDATE_TAG)
    )


def validate_model(model: type[Any], values: Mapping[str, Any], what: str) -> Any:
    """``model.model_validate(values)`` with one-line :class:`ConfigError` messages that name
    the key, the value and the valid keys."""
    check_keys(model, values, what)
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "?"
        message = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(
            f"invalid value {err.get('input')!r} for key {key!r} of {what}: {message}"
        ) from None


def check_keys(model: type[Any], values: Mapping[str, Any], what: str) -> None:
    """Refuse the first key of ``values`` that ``model`` has no field for, naming the valid
    ones."""
    for key in values:
        if key not in model.model_fields:
            listing = ", ".join(model.model_fields) or "none"
            raise ConfigError(f"unknown key {key!r} for {what}; valid keys: {listing}")


def split_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``KIND[:key=value,...]`` into the kind and its raw string values.

    Parentheses group a nested spec; the outer pair is removed from the value.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError("index spec is empty; expected KIND[:key=value,...], e.g. 'flat'")
    kind, sep, rest = spec.strip().partition(":")
    kind = kind.strip()
    values: dict[str, str] = {}
    if not sep:
        return kind, values
    if not rest.strip():
        raise ConfigError(f"index spec {spec!r} has ':' but no key=value pairs after it")
    for item in _split_top_level(rest, spec):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key or not value:
            raise ConfigError(f"index spec {spec!r}: {item.strip()!r} is not key=value")
        if key in values:
            raise ConfigError(f"index spec {spec!r}: key {key!r} is given twice")
        if value.startswith("(") and value.endswith(")"):
            value = value[1:-1].strip()
        values[key] = value
    return kind, values


def _split_top_level(text: str, spec: str) -> list[str]:
    items, depth, start = [], 0, 0
    for pos, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ConfigError(f"index spec {spec!r}: unbalanced ')'")
        elif char == "," and depth == 0:
            items.append(text[start:pos])
            start = pos + 1
    if depth != 0:
        raise ConfigError(f"index spec {spec!r}: unbalanced '('")
    items.append(text[start:])
    return items
