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
import socket
from pathlib import Path, PurePosixPath
from typing import Any

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


# Binds that listen on every address of the machine.
WILDCARDS = {"0.0.0.0", "::"}


def allowed_hosts(bind: str) -> set[str]:
    """Host names a request may use: the bound address (an IPv6 literal also in brackets),
    loopback's names for loopback, and for a wildcard bind every name and address of this
    machine (its LAN address is how another machine reaches it)."""
    names = {bind.lower(), f"[{bind.lower()}]" if ":" in bind else bind.lower()}
    if bind in LOOPBACK or bind.startswith("127.") or bind in WILDCARDS:
        names |= LOOPBACK
    if bind in WILDCARDS:
        host = socket.gethostname()
        names |= {host.lower(), socket.getfqdn().lower()}
        try:
            for *_, address in socket.getaddrinfo(host, None):
                ip = str(address[0]).split("%")[0]
                names |= {ip, f"[{ip}]"} if ":" in ip else {ip}
        except OSError:
            pass  # no resolvable name: loopback and the literal addresses above still answer
    return names


def url_host(host: str) -> str:
    """host as it goes into a URL: an IPv6 literal in brackets; a wildcard bind as the
    machine's LAN address (what another machine, and this one, can open)."""
    if host in WILDCARDS:
        lan = lan_address()
        return lan if lan else "127.0.0.1"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def lan_address() -> str | None:
    """This machine's first non-loopback IPv4 address, by its host name; None when it has
    none."""
    try:
        found = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return None
    addresses = [str(a[4][0]) for a in found if not str(a[4][0]).startswith("127.")]
    return addresses[0] if addresses else None


def cookie_name(port: int) -> str:
    """One cookie per port: two studios open in one browser keep their own tokens."""
    return f"{COOKIE}_{port}"


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


# Longest video name a request may carry (a path relative to the folder).
MAX_NAME = 1024


def video_file(root: Path, name: Any) -> Path:
    """The video file a request names: a path relative to the folder that stays inside it and
    is an existing regular file (never the folder itself, a directory or a missing file);
    PathRefused (a 400 in the page's words) for anything else."""
    if not isinstance(name, str) or not name:
        raise PathRefused("no video named (pick one in the library)")
    if len(name) > MAX_NAME:
        raise PathRefused(f"a video name of {len(name)} characters is longer than any here")
    path = inside(root, name)
    if path == root.resolve() or not path.is_file():
        raise PathRefused(f"{name!r} is not a video file in this folder")
    return path


def relative(root: Path, path: Path) -> str:
    """path as the studio names it: relative to the folder, with forward slashes."""
    return path.resolve().relative_to(root.resolve()).as_posix()
