"""Client API keys with scopes: ``read`` (recommendations and the catalogue), ``write``
(feedback) and ``admin`` (reload; implies the other two).

Keys come from ``MOVIEREC_API_KEYS`` as ``KEY:SCOPE[+SCOPE...]`` entries separated by
commas (``MOVIEREC_API_KEY`` adds one admin key). A client sends its key as
``Authorization: Bearer KEY`` or ``X-API-Key: KEY``. Read and write keys are required when
``MOVIEREC_AUTH`` is ``on``, or ``auto`` (the default) and the service listens on an address
other than loopback; so the two-command demo on 127.0.0.1 needs no key while a service
exposed to a network refuses anonymous clients. Admin routes always need an admin key.
Only SHA-256 digests of the keys are kept in memory.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field

SCOPES = ("read", "write", "admin")
IMPLIED = {"admin": {"read", "write", "admin"}, "write": {"write"}, "read": {"read"}}


class AuthConfigError(ValueError):
    """``MOVIEREC_API_KEYS`` or ``MOVIEREC_AUTH`` cannot be used as given."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


@dataclass(frozen=True)
class KeyRing:
    """The configured keys (as digests) with their scopes, and whether clients must send one."""

    scopes: dict[bytes, frozenset[str]] = field(default_factory=dict)
    required: bool = False

    @classmethod
    def parse(cls, api_keys: str, admin_key: str = "", auth: str = "auto", host: str = "127.0.0.1") -> KeyRing:
        """Build the ring from the settings' text.

        Raises:
            AuthConfigError: an entry is malformed, names an unknown scope, or keys are
                required and none is configured for clients.
        """
        scopes: dict[bytes, set[str]] = {}
        for n, entry in enumerate(e.strip() for e in api_keys.split(",")):
            if not entry:
                continue
            key, sep, names = entry.rpartition(":")
            if not sep or not key:
                raise AuthConfigError(
                    f"MOVIEREC_API_KEYS entry {n + 1} is not KEY:SCOPE[+SCOPE] (scopes: {', '.join(SCOPES)})"
                )
            for name in names.split("+"):
                if name not in IMPLIED:
                    raise AuthConfigError(
                        f"MOVIEREC_API_KEYS entry {n + 1} names unknown scope '{name}'; known: {', '.join(SCOPES)}"
                    )
                scopes.setdefault(_digest(key), set()).update(IMPLIED[name])
        if admin_key:
            scopes.setdefault(_digest(admin_key), set()).update(IMPLIED["admin"])
        if auth not in ("auto", "on", "off"):
            raise AuthConfigError(f"MOVIEREC_AUTH is '{auth}'; use auto, on or off")
        required = auth == "on" or (auth == "auto" and not is_loopback(host))
        if required and not any({"read", "write"} & s for s in scopes.values()):
            why = "MOVIEREC_AUTH=on" if auth == "on" else f"the service listens on {host}, not loopback"
            raise AuthConfigError(
                f"client keys are required ({why}) but none is configured: set MOVIEREC_API_KEYS "
                "(for example 'KEY1:read,KEY2:read+write'), or MOVIEREC_AUTH=off on a trusted network"
            )
        return cls({d: frozenset(s) for d, s in scopes.items()}, required)

    def scopes_of(self, key: str | None) -> frozenset[str] | None:
        """The scopes of ``key``; None for no key or an unknown one."""
        if not key:
            return None
        return self.scopes.get(_digest(key))

    @property
    def has_admin(self) -> bool:
        """Whether any key may use the admin routes."""
        return any("admin" in s for s in self.scopes.values())
