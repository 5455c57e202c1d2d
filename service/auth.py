"""API keys: ``ROLE KEY`` lines (``read`` or ``admin``) from a file or ``GLINT_API_KEYS``."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, TypeGuard

from .errors import ServiceError

Role = Literal["read", "admin"]
ROLES: tuple[Role, ...] = ("read", "admin")

__all__ = ["ROLES", "KeyRing", "Role", "parse_keys"]


def _is_role(name: str) -> TypeGuard[Role]:
    return name in ROLES


def parse_keys(text: str, *, source: str) -> dict[str, Role]:
    """Parse ``ROLE KEY`` entries (newline- or comma-separated, ``#`` comments)."""
    keys: dict[str, Role] = {}
    for lineno, raw in enumerate(text.replace(",", "\n").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.replace(":", " ", 1).split() if " " not in line else line.split()
        if len(parts) != 2 or not _is_role(role := parts[0]):
            raise ValueError(
                f"{source}: entry {lineno} is not 'ROLE KEY' with ROLE one of {', '.join(ROLES)}"
            )
        key = parts[1]
        if len(key) < 8:
            raise ValueError(f"{source}: entry {lineno}: keys must be at least 8 characters")
        keys[key] = role
    return keys


class KeyRing:
    """Checks bearer keys in constant time; an empty ring means auth is off."""

    def __init__(self, keys: Mapping[str, Role]) -> None:
        self._keys = [(k.encode(), r) for k, r in keys.items()]

    @classmethod
    def from_sources(cls, file: Path | None, env_value: str | None) -> KeyRing:
        keys: dict[str, Role] = {}
        if file is not None:
            try:
                text = Path(file).read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"{file}: cannot read API keys ({exc.strerror})") from None
            keys.update(parse_keys(text, source=str(file)))
        if env_value:
            keys.update(parse_keys(env_value, source="GLINT_API_KEYS"))
        return cls(keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def bearer_role(self, authorization: str) -> Role:
        """The role of the key in an ``Authorization: Bearer KEY`` header value; a missing,
        malformed or unknown key raises the 401 :class:`ServiceError`."""
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ServiceError("unauthorized", "missing API key: send 'Authorization: Bearer KEY'")
        role = self.role_of(key.strip())
        if role is None:
            raise ServiceError("unauthorized", "invalid API key")
        return role

    def role_of(self, key: str) -> Role | None:
        """The role of ``key``, comparing against every key so timing does not leak which."""
        given = key.encode()
        found: Role | None = None
        for stored, role in self._keys:
            if hmac.compare_digest(stored, given):
                found = role
        return found
