"""Large JSON batch bodies, validated a step at a time.

pydantic validates a JSON body in one call that holds the GIL from start to end: on a 28 MB
batch of 10,000 x 384 numbers that is 375 ms in which no other thread of the process runs
(the event loop included, though the parse is on a worker thread: measured, the loop thread
got the GIL not once in that stretch), and its Python floats take 230 MB at the peak.

So the big array of a batch body (``vectors`` or ``token_sets``) is cut, at item
boundaries, into steps of about :data:`STEP_BYTES` of text, and each step is validated by
pydantic as a list of items, with the very validator of the request model's field: the same
numbers come out and the same values are refused. The caller copies each step into its
arrays, so the GIL is held a few milliseconds at a time and one step's Python floats exist at
once. The rest of the body, with a one-item placeholder where the array was, is validated by
the request model as usual (``k``, ``params``, unknown fields, exactly one of the two).

Only the plain shape that JSON writers produce is taken this way: the key at the top level of
the object and not inside a string (checked on the text before it), not repeated after the
array (pydantic takes a repeated key's last value), items separated by commas and nothing but
whitespace around them. Anything else, or anything that does not validate,
gives up (:func:`split` returns None, a step raises ``ValidationError``), and the caller
validates the body whole, which answers exactly as it always did.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

__all__ = ["STEP_BYTES", "Split", "split"]

STEP_BYTES = 256 * 1024
"""Text validated in one step: ~5 ms of GIL, at most ~10 MB of Python floats at 2 bytes a
number (a single item longer than this is one step of its own)."""

_PREFIX_MAX = 4096  # text before the array that is checked; longer, the body is parsed whole
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]"]')
_SPACE = b" \t\r\n"

# A step's lists stop at their first invalid item, as the request model's do (fail_fast):
# one error for a step full of bad items, not one per item.
_Row = Annotated[list[float], Field(fail_fast=True)]
_Matrix = Annotated[list[_Row], Field(fail_fast=True)]


@dataclass(frozen=True)
class _Field:
    name: str
    item_end: bytes  # the text that ends an item and nothing else in a valid array
    placeholder: bytes
    placeholder_value: Any
    items: TypeAdapter[Any]


_FIELDS = (
    # a row [n, ...] holds no bracket: every "]" in the array ends one
    _Field(
        "vectors",
        b"]",
        b"[[0]]",
        [[0.0]],
        TypeAdapter(Annotated[list[_Row], Field(fail_fast=True)]),
    ),
    # a set [[n, ...], ...]: a row's "]" is followed by "," or, at the set's end only, "]"
    _Field(
        "token_sets",
        b"]]",
        b"[[[0]]]",
        [[[0.0]]],
        TypeAdapter(Annotated[list[_Matrix], Field(fail_fast=True)]),
    ),
)


@dataclass(frozen=True)
class Split:
    """A batch body cut into steps: ``masked``, the body with :attr:`placeholder_value`
    in place of field :attr:`field`'s array, and the spans of the array's steps."""

    body: bytes
    masked: bytes
    items: int  # how many items the array holds (if the steps validate)
    _field: _Field
    _spans: tuple[tuple[int, int], ...]

    @property
    def field(self) -> str:
        return self._field.name

    @property
    def placeholder_value(self) -> Any:
        return self._field.placeholder_value

    def steps(self) -> Iterator[list[Any]]:
        """Each step's items, validated (``pydantic.ValidationError`` if they are not)."""
        for lo, hi in self._spans:
            yield self._field.items.validate_json(b"[" + self.body[lo:hi] + b"]")


def split(body: bytes) -> Split | None:
    """``body`` cut into steps, or None if it is not of the plain shape (see the module)."""
    for field in _FIELDS:
        key = b'"' + field.name.encode() + b'"'
        at = body.find(key)
        if at < 0:
            continue
        if at > _PREFIX_MAX or not _top_level(body[:at]):
            return None
        colon = _skip_space(body, at + len(key))
        start = _skip_space(body, colon + 1)
        if body[colon : colon + 1] != b":" or body[start : start + 1] != b"[":
            return None
        end = _array_end(body, start)
        if end is None or body.find(key, end) >= 0:
            # the key again after the array: the body's value for it is the last one (as
            # pydantic takes it), not this one; or the key is only in a string. Parsed whole.
            return None
        spans = _spans(body, start + 1, end - 1, field.item_end)
        if spans is None:
            return None
        masked = body[:start] + field.placeholder + body[end:]
        items = body.count(field.item_end, start + 1, end - 1)
        return Split(body, masked, items, field, spans)
    return None


def _skip_space(body: bytes, at: int) -> int:
    while body[at : at + 1] in (b" ", b"\t", b"\r", b"\n"):
        at += 1
    return at


def _top_level(prefix: bytes) -> bool:
    """Whether the text after ``prefix`` (the start of a body) is at the top level of its
    object and not inside a string."""
    depth = 0
    for token in _TOKENS.finditer(prefix):
        text = token.group()
        if text == b'"':  # a string left open: the key is inside it
            return False
        if text[:1] != b'"':
            depth += 1 if text in (b"{", b"[") else -1
    return depth == 1 and prefix.lstrip(_SPACE)[:1] == b"{"


def _array_end(body: bytes, start: int) -> int | None:
    """Where the array opened at ``start`` ends (just after its "]"): the array of numbers
    and brackets holds no quote and no brace, so it ends before the next of them."""
    stops = [i for i in (body.find(b'"', start), body.find(b"}", start)) if i >= 0]
    text = body[start : min(stops, default=len(body))].rstrip(_SPACE)
    if text.endswith(b","):  # the comma before the next key
        text = text[:-1].rstrip(_SPACE)
    return start + len(text) if text.endswith(b"]") and len(text) > 1 else None


def _spans(body: bytes, lo: int, hi: int, item_end: bytes) -> tuple[tuple[int, int], ...] | None:
    """The array's content, ``body[lo:hi]``, cut after an item end every ~STEP_BYTES; each
    span starts at an item, and spans are separated by a comma and spaces only."""
    spans: list[tuple[int, int]] = []
    at = _skip_space(body, lo)
    while at < hi:
        if spans:  # between two steps: a comma, and nothing else but spaces
            if body[at : at + 1] != b",":
                return None
            at = _skip_space(body, at + 1)
        cut = body.find(item_end, min(at + STEP_BYTES, hi), hi)
        stop = hi if cut < 0 else cut + len(item_end)
        spans.append((at, stop))
        at = _skip_space(body, stop)
    return tuple(spans) or None
