"""The studio serves a folder of private videos: nothing gets in without the token, nothing
changes on a request from another site, nothing is read or written outside the folder.

- Every request carries the random token: `?token=...` (the URL the command prints, as Jupyter
  does), the `fsrun_studio` cookie the first visit sets, or an `X-Studio-Token` header. Anything
  else is 403.
- Requests that change something (POST, PUT, DELETE) must also come from the studio's own page:
  an `Origin` header, when present, must be the studio's address, and the `Host` header must
  name the address the studio listens on (no DNS rebinding: evil.example resolving to 127.0.0.1
  still sends `Host: evil.example`).
- Paths from requests are relative to the folder; `..`, absolute paths, backslashes, NUL and a
  symlink whose target lies outside are refused (after URL decoding, so `%2e%2e%2f` is `../`).
"""
from __future__ import annotations

import hmac
import secrets
from pathlib import Path, PurePosixPath

COOKIE = "fsrun_studio"
HEADER = "x-studio-token"
CHANGING_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


class PathRefused(ValueError):
    """A request named a path outside the studio's folder."""


def new_token() -> str:
    return secrets.token_urlsafe(24)


def token_ok(expected: str, *candidates: str | None) -> bool:
    """Whether any candidate equals the token (compared in constant time)."""
    return any(c is not None and hmac.compare_digest(c.encode(), expected.encode())
               for c in candidates)


def host_ok(host_header: str | None, allowed: set[str]) -> bool:
    """Whether the Host header names one of the addresses the studio listens on."""
    if not host_header:
        return False
    name = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
    return name.lower() in allowed


def origin_ok(origin: str | None, allowed: set[str], port: int) -> bool:
    """An Origin header, when a browser sends one, must be the studio itself."""
    if origin is None:
        return True  # not a browser's cross-site request (curl, the tests' client)
    return origin in {f"http://{name}:{port}" for name in allowed}


def allowed_hosts(bind: str) -> set[str]:
    """Host names a request may use: the bound address, and loopback's names for loopback."""
    names = {bind.lower()}
    if bind in LOOPBACK or bind.startswith("127."):
        names |= LOOPBACK
    return names


def inside(root: Path, relative: str) -> Path:
    """root / relative, refused unless it stays inside root (symlinks resolved)."""
    if not relative or "\\" in relative or "\0" in relative:
        raise PathRefused(f"refused path {relative!r}")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts or relative.startswith("~"):
        raise PathRefused(f"refused path {relative!r}: it must be relative to the folder")
    base = root.resolve()
    target = (base / pure).resolve()
    if target != base and not target.is_relative_to(base):
        raise PathRefused(f"refused path {relative!r}: it leads out of the folder")
    return target


def relative(root: Path, path: Path) -> str:
    """path as the studio names it: relative to the folder, with forward slashes."""
    return path.resolve().relative_to(root.resolve()).as_posix()
