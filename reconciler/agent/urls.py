"""The URLs a node's settings name: which are allowed (git's and the tip file's), in which
order a node tries them, and how messages show them. Apart from the settings model and
the cache, so a quiet run (quietrun.py) uses them without loading either."""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from collections.abc import Sequence

# URL schemes git may use to reach the config repo; anything else (ext::, fd::...) is refused.
_SCHEMES = ("file", "git", "ssh", "https", "http")


def check_url(url: str) -> None:
    """Refuse URLs git would reach through an unexpected transport (`ext::`, `fd::`...)."""
    if not url.strip():
        raise ValueError("empty URL")
    if url.startswith("-"):
        raise ValueError(f"bad URL {url!r}")
    if "::" in url.split("/", 1)[0]:
        raise ValueError(f"transport helper URLs are not allowed: {url!r}")
    if "://" in url:
        scheme = url.split("://", 1)[0].lower()
        if scheme not in _SCHEMES:
            raise ValueError(
                f"unsupported URL scheme {scheme!r} in {url!r} (expected {', '.join(_SCHEMES)})"
            )


def check_tip_url(url: str) -> None:
    """Refuse a tip URL that is not plain http(s) with a host."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"tip-url must be an http:// or https:// URL, got {url!r}")


_PASSWORD_RE = re.compile(r"(://[^/@:\s]+):[^/@\s]+@")


def redact(text: str) -> str:
    """Hide the password of `scheme://user:password@host` URLs in messages."""
    return _PASSWORD_RE.sub(r"\1:***@", text)


def spread(node: str, remote: str, mirrors: Sequence[str]) -> list[str]:
    """The URLs to fetch from, in order: the one the node's name picks among the remote and
    its mirrors (the same on every run, and a fleet shares the load evenly), then the
    remote, then the other mirrors in order."""
    urls = list(dict.fromkeys([remote, *mirrors]))
    chosen = urls[int.from_bytes(hashlib.sha256(node.encode()).digest()[:8], "big") % len(urls)]
    return [chosen, *(url for url in urls if url != chosen)]
