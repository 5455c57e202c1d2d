"""The filter language of searches: a boolean tree over payload fields, typed.

A :class:`Filter` holds up to three clause lists: ``must`` (every condition holds), ``should``
(at least ``min_should`` of them, 1 by default) and ``must_not`` (none holds). A condition is
a field condition (``{"key": "lang", "match": {"value": "en"}}``, ``match`` with ``any`` or
``except``, or ``range`` with ``gt``/``gte``/``lt``/``lte``), ``{"has_id": [...]}``,
``{"is_empty": {"key": ...}}``, or a nested filter. Keys are dotted paths into the payload
(``meta.lang``). The grammar is close to Qdrant's on purpose.

Defined once, here: the client sends these models, the server parses requests with them and
the engine (:mod:`glint.index.filters`) compiles them. What a filter means for a given index
(a field without a payload index, a value of the wrong type) is checked by the engine.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    ValidationError,
    model_validator,
)

__all__ = [
    "MAX_CLAUSES",
    "MAX_FILTER_DEPTH",
    "Condition",
    "FieldCondition",
    "Filter",
    "HasIdCondition",
    "IsEmptyCondition",
    "IsEmptyKey",
    "Match",
    "Range",
    "Scalar",
    "error_place",
    "filter_json",
]

MAX_FILTER_DEPTH = 16
"""Filters nest at most this deep (a bound on the work a hostile request can ask for)."""

Scalar = StrictStr | StrictInt | StrictFloat | StrictBool
"""A payload value a condition compares with: a string, an integer, a float or a boolean
(strict: ``"1"`` is a string and ``true`` is not the integer 1)."""
_Number = StrictInt | StrictFloat
MAX_CLAUSES = 1024
"""Conditions per clause list, at most (each costs a pass over a mask of the collection)."""
_Values = Annotated[list[Scalar], Field(min_length=1, fail_fast=True)]


class _Strict(BaseModel):
    """Unknown fields are refused: a misspelt operator is an error, not a filter that lets
    everything through."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Match(_Strict):
    """Exactly one of: ``value`` (the field equals it), ``any`` (equals one of them),
    ``except`` (has a value and it is none of them). A field holding a list matches when
    one of its values does (for ``except``: when none of its values is among those given)."""

    value: Scalar | None = None
    any: _Values | None = None
    except_: _Values | None = Field(default=None, alias="except")

    @model_validator(mode="after")
    def _exactly_one(self) -> Match:
        given = [
            n
            for n, v in (("value", self.value), ("any", self.any), ("except", self.except_))
            if v is not None
        ]
        if len(given) != 1:
            raise ValueError("match takes exactly one of 'value', 'any' and 'except'")
        return self


class Range(_Strict):
    """Bounds on a numeric field: any of ``gt``, ``gte``, ``lt``, ``lte`` (at least one)."""

    gt: _Number | None = None
    gte: _Number | None = None
    lt: _Number | None = None
    lte: _Number | None = None

    @model_validator(mode="after")
    def _some_bound(self) -> Range:
        if self.gt is None and self.gte is None and self.lt is None and self.lte is None:
            raise ValueError("range needs at least one of 'gt', 'gte', 'lt' and 'lte'")
        return self


class FieldCondition(_Strict):
    """A condition on the payload field ``key``: exactly one of ``match`` and ``range``."""

    key: StrictStr = Field(min_length=1)
    match: Match | None = None
    range: Range | None = None

    @model_validator(mode="after")
    def _one_test(self) -> FieldCondition:
        if (self.match is None) == (self.range is None):
            raise ValueError(f"condition on {self.key!r}: give exactly one of 'match' and 'range'")
        return self


class HasIdCondition(_Strict):
    """The point's id is one of ``has_id`` (the external ids searches return)."""

    has_id: Annotated[list[StrictInt], Field(min_length=1, fail_fast=True)]


class IsEmptyKey(_Strict):
    key: StrictStr = Field(min_length=1)


class IsEmptyCondition(_Strict):
    """The field ``is_empty.key`` is missing, null or an empty list."""

    is_empty: IsEmptyKey


def _condition_tag(value: Any) -> str:
    """Which model a condition is, from its keys (so that an error names the fields of the
    condition that was meant, not those of every model it could have been)."""
    if isinstance(value, BaseModel):
        return type(value).__name__
    if isinstance(value, dict):
        for key, tag in (("key", "FieldCondition"), ("has_id", "HasIdCondition")):
            if key in value:
                return tag
        if "is_empty" in value:
            return "IsEmptyCondition"
    return "Filter"


Condition = Annotated[
    (
        Annotated[FieldCondition, Tag("FieldCondition")]
        | Annotated[HasIdCondition, Tag("HasIdCondition")]
        | Annotated[IsEmptyCondition, Tag("IsEmptyCondition")]
        | Annotated["Filter", Tag("Filter")]
    ),
    Discriminator(_condition_tag),
]
_Clauses = Annotated[list[Condition], Field(min_length=1, max_length=MAX_CLAUSES, fail_fast=True)]


class Filter(_Strict):
    """A boolean tree of conditions; a clause left out constrains nothing, and a filter with
    no clause at all lets every point through."""

    must: _Clauses | None = None
    should: _Clauses | None = None
    must_not: _Clauses | None = None
    min_should: StrictInt | None = Field(
        default=None, ge=1, description="How many 'should' conditions must hold (default 1)."
    )

    @model_validator(mode="after")
    def _check(self) -> Filter:
        if self.min_should is not None:
            if self.should is None:
                raise ValueError("min_should needs a 'should' clause")
            if self.min_should > len(self.should):
                raise ValueError(
                    f"min_should is {self.min_should} but 'should' has {len(self.should)} "
                    "conditions"
                )
        if self.depth() > MAX_FILTER_DEPTH:
            raise ValueError(f"filters nest at most {MAX_FILTER_DEPTH} deep")
        return self

    def depth(self) -> int:
        """How deep filters nest in this one (1 for a filter of field conditions)."""
        inner = [
            c.depth()
            for clause in (self.must, self.should, self.must_not)
            for c in clause or ()
            if isinstance(c, Filter)
        ]
        return 1 + max(inner, default=0)

    def is_empty(self) -> bool:
        """Whether the filter has no clause (and so lets every point through)."""
        return self.must is None and self.should is None and self.must_not is None


Filter.model_rebuild()


_TAGS = frozenset({"FieldCondition", "HasIdCondition", "IsEmptyCondition", "Filter"})
_SCALAR_TAGS = frozenset({"str", "int", "float", "bool"})


def error_place(error: Mapping[str, Any], root: str = "filter") -> str:
    """Where a pydantic error of a filter is, in the user's terms: its location under
    ``root`` (``filter.must.0.match``; ``""`` for a location that starts at the filter's
    field already) without the names pydantic adds for the members of a union
    (``FieldCondition``, the ``str`` of a scalar)."""
    loc = [str(p) for p in error.get("loc", ())]
    unknown = loc.pop() if loc and error.get("type") == "extra_forbidden" else None
    parts = [p for p in loc if p not in _TAGS]
    if unknown is not None:
        parts.append(unknown)  # a key the user wrote, whatever its name
    elif parts and parts[-1] in _SCALAR_TAGS:
        parts.pop()  # a union member's name, not a key the user wrote
    return ".".join([root, *parts] if root else parts)


def filter_json(value: Filter | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A filter as the JSON object a request carries it as, from a :class:`Filter` or a
    mapping (checked against it); None for no filter (None, or one without clauses).

    Raises:
        ValueError: the mapping is no filter (the message names the place,
            ``filter.must.0.match: ...``), or a number in it is NaN or infinite, which JSON
            cannot carry.
    """
    if value is None:
        return None
    if not isinstance(value, Filter):
        if not isinstance(value, Mapping):
            raise ValueError(f"filter must be a Filter or a mapping, got {type(value).__name__}")
        try:
            value = Filter.model_validate(dict(value))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            message = str(first["msg"]).removeprefix("Value error, ")
            raise ValueError(f"{error_place(first)}: {message}") from None
    if value.is_empty():
        return None
    dumped: dict[str, Any] = value.model_dump(by_alias=True, exclude_none=True)
    try:
        json.dumps(dumped, allow_nan=False)
    except ValueError:
        raise ValueError("filter must hold finite numbers (no NaN or infinity)") from None
    return dumped
