"""`fsrun studio` as a person starts it: a real server on a free loopback port, the address
with its token printed, the browser left alone with --no-browser, Ctrl-C stopping it; without
the extra, the one line naming it (exit 6)."""
from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fsrun import cli

from .conftest import serve


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_studio_serves_on_loopback_with_its_token(library: Path, demo_package: Path,
                                                  tmp_path: Path) -> None:
    with serve(library, demo_package, tmp_path / "cache") as (address, _):
        found = re.search(r"(http://127\.0\.0\.1:(\d+))/\?token=(\S+)", address)
        assert found, address
        base, port, token = found.group(1), int(found.group(2)), found.group(3)
        assert port > 0
        status, body = _get(f"{base}/?token={token}")
        assert status == 200 and b"fsrun studio" in body
        assert _get(f"{base}/api/library")[0] == 403
        status, body = _get(f"{base}/api/library", {"x-studio-token": token})
        assert status == 200 and b".mp4" in body
        # Only loopback: the machine's other addresses do not answer.
        with socket.socket() as probe:
            probe.settimeout(2)
            others = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None,
                                                          socket.AF_INET)} - {"127.0.0.1"}
            for other in sorted(a for a in others if not a.startswith("127."))[:1]:
                assert probe.connect_ex((other, port)) != 0


def test_studio_refuses_a_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["studio", str(tmp_path / "nowhere"), "--no-browser"]) == 3
    assert "not a folder" in capsys.readouterr().err


def test_studio_without_the_extra_names_it(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['starlette'] = None; from fsrun import cli; "
            f"sys.exit(cli.main(['studio', {str(tmp_path)!r}, '--no-browser']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 6, done.stderr
    assert "fsrun[studio]" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_listening_elsewhere_warns(library: Path, demo_package: Path, tmp_path: Path) -> None:
    """--host 0.0.0.0 is allowed, with a warning; the token still guards it."""
    with serve(library, demo_package, tmp_path / "cache", "--host", "0.0.0.0") as (address,
                                                                                   server):
        port = int(re.search(r":(\d+)/", address).group(1))
        deadline = time.monotonic() + 10
        warning = ""
        while "WARNING" not in warning and time.monotonic() < deadline:
            warning += server.stderr.readline()
        assert "other machines can reach it" in warning
        assert _get(f"http://127.0.0.1:{port}/api/info")[0] == 403


def test_a_restart_keeps_the_address_and_the_open_tab_works(library: Path, demo_package: Path,
                                                           tmp_path: Path) -> None:
    with serve(library, demo_package, tmp_path / "cache") as (first, _):
        pass
    kept = library / ".fsrun-studio" / "address.json"
    assert kept.stat().st_mode & 0o777 == 0o600  # the token opens the studio: owner only
    with serve(library, demo_package, tmp_path / "cache") as (second, _):
        assert second == first  # same port, same token: the old tab keeps working
        base, token = second.split("/?token=")
        status, body = _get(f"{base}/api/info", {"x-studio-token": token})
        assert status == 200 and b"demo.fsmodel" in body
        assert _get(f"{base}/favicon.ico", {"x-studio-token": token})[0] == 200


def test_an_explicit_host_answers_at_the_address_it_prints(library: Path, demo_package: Path,
                                                           tmp_path: Path) -> None:
    with serve(library, demo_package, tmp_path / "cache", "--host", "0.0.0.0") as (address, _):
        base, token = address.split("/?token=")
        assert "0.0.0.0" not in base
        status, _ = _get(f"{base}/api/info", {"x-studio-token": token})
        assert status == 200  # not 403 "unknown Host"
    with serve(library, demo_package, tmp_path / "cache", "--host", "::1") as (address, _):
        assert address.startswith("http://[::1]:")
        base, token = address.split("/?token=")
        assert _get(f"{base}/api/info", {"x-studio-token": token})[0] == 200
