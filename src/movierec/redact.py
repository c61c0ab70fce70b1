"""Credentials kept out of messages, logs and API replies."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact(uri: str) -> str:
    """``uri`` without credentials (``http://user:token@host`` -> ``http://***@host``)."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    netloc = f"***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def redact_in(text: str, uri: str) -> str:
    """``text`` with every occurrence of ``uri`` redacted."""
    return text.replace(uri, redact(uri)) if uri else text
