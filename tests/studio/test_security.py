"""Nothing gets into the studio without its token, nothing changes from another site, nothing
outside the folder is read or written: every route is tried without the token, with a foreign
Origin and Host, and with paths that lead out of the folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from fsrun.studio import security

from .conftest import PORT, token_headers, videos_in

GETS = ["/", "/viewer", "/static/studio.js", "/api/info", "/api/library", "/api/jobs",
        "/api/events", "/api/media?video=a.mp4", "/api/frame?video=a.mp4&at=0",
        "/api/look?video=a.mp4", "/api/train", "/api/model"]
POSTS = {"/api/jobs": {"videos": ["a.mp4"]}, "/api/jobs/x/cancel": {}, "/api/jobs/clear": {},
         "/api/jobs/pause": {"paused": True}, "/api/jobs/x/move": {"direction": "up"},
         "/api/train/cancel": {},
         "/api/redo": {"video": "a.mp4"},
         "/api/compare": {"video": "a.mp4", "first": [], "second": []},
         "/api/save": {"video": "a.mp4", "actions": [{"at": 0, "pos": 0}]},
         "/api/settings": {"video": "a.mp4", "crop": "full"}, "/api/train": {},
         "/api/model": {"model": "started"}}
ESCAPES = ["../outside.mp4", "..%2Foutside.mp4", "%2e%2e%2foutside.mp4", "%2E%2E/outside.mp4",
           "/etc/passwd", "sub/../../outside.mp4", "..\\outside.mp4", "link/outside.mp4",
           "linked.mp4", "~/outside.mp4", "a.mp4%00.txt"]


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.fixture
def fenced(library: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A library with a private folder beside it, reachable through two symlinks."""
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "outside.mp4").write_bytes(next(library.glob("*.mp4")).read_bytes())
    (outside / "secret.txt").write_text("not for the studio")
    os.symlink(outside / "outside.mp4", tmp_path / "outside.mp4")  # what ../outside.mp4 names
    os.symlink(outside, library / "link")
    os.symlink(outside / "outside.mp4", library / "linked.mp4")
    return library, outside


@pytest.mark.parametrize("path", GETS)
def test_get_without_the_token_is_403(make_studio, library: Path, path: str) -> None:
    studio, client = make_studio(library, start=False)
    answer = client.get(path)
    assert answer.status_code == 403 and "forbidden" in answer.json()["error"]
    assert client.get(path + ("&" if "?" in path else "?") + "token=wrong").status_code == 403


@pytest.mark.parametrize("path", sorted(POSTS))
def test_post_without_the_token_is_403_and_changes_nothing(make_studio, library: Path,
                                                           path: str) -> None:
    studio, client = make_studio(library, start=False)
    before = _tree(library)
    answer = client.post(path, json=POSTS[path])
    assert answer.status_code == 403
    answer = client.post(path, json=POSTS[path], headers={security.HEADER: "x" * 32})
    assert answer.status_code == 403
    assert _tree(library) == before and studio.jobs.snapshot() == []


def test_token_in_the_address_then_the_cookie_then_a_header(make_studio, library: Path) -> None:
    studio, client = make_studio(library, start=False)
    first = client.get(f"/?token={studio.token}")
    assert first.status_code == 200 and "fsrun studio" in first.text
    cookie = first.headers["set-cookie"]
    assert f"{security.cookie_name(studio.port)}={studio.token}" in cookie  # one per port
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    assert client.get("/api/info").status_code == 200  # the cookie carries it now
    client.cookies.clear()
    assert client.get("/api/info").status_code == 403
    assert client.get("/api/info", headers=token_headers(studio)).status_code == 200
    assert client.get("/api/info", cookies={security.COOKIE: "guess"}).status_code == 403


def test_a_change_from_another_site_is_refused(make_studio, library: Path) -> None:
    studio, client = make_studio(library, start=False)
    name = videos_in(library)[0]
    headers = {**token_headers(studio), "origin": "http://evil.example"}
    for path, body in [("/api/jobs", {"videos": [name]}),
                       ("/api/save", {"video": name, "actions": [{"at": 0, "pos": 50}]}),
                       ("/api/settings", {"video": name, "crop": "sbs-left"})]:
        answer = client.post(path, json=body, headers=headers)
        assert answer.status_code == 403 and "another site" in answer.json()["error"]
    assert studio.jobs.snapshot() == [] and not (library / name).with_suffix(
        ".funscript").exists()
    assert studio.state.settings(name) == {}
    # Another port on loopback is another origin too; the studio's own is let through.
    for origin, status in [(f"http://127.0.0.1:{PORT + 1}", 403), ("null", 403),
                           (f"http://127.0.0.1:{PORT}", 200), (f"http://localhost:{PORT}", 200)]:
        answer = client.post("/api/settings", json={"video": name, "crop": "full"},
                             headers={**token_headers(studio), "origin": origin})
        assert answer.status_code == status, origin


def test_dns_rebinding_is_refused(make_studio, library: Path) -> None:
    """evil.example resolving to 127.0.0.1 still sends its own name as Host."""
    studio, client = make_studio(library, start=False)
    for host in ("evil.example", f"evil.example:{PORT}", "127.0.0.1.evil.example", ""):
        answer = client.get("/api/library", headers={**token_headers(studio), "host": host})
        assert answer.status_code == 403, host
    for host in (f"127.0.0.1:{PORT}", f"localhost:{PORT}", f"[::1]:{PORT}"):
        answer = client.get("/api/info", headers={**token_headers(studio), "host": host})
        assert answer.status_code == 200, host


@pytest.mark.parametrize("escape", ESCAPES)
def test_paths_out_of_the_folder_are_refused(make_studio, fenced: tuple[Path, Path],
                                             escape: str) -> None:
    library, outside = fenced
    studio, client = make_studio(library, start=False)
    before = _tree(outside), sorted(p.name for p in outside.parent.iterdir())
    headers = token_headers(studio)
    reads = [f"/api/media?video={escape}", f"/api/frame?video={escape}&at=0",
             f"/api/look?video={escape}", f"/static/{escape}"]
    for path in reads:
        answer = client.get(path, headers=headers)
        assert answer.status_code in (400, 404), path
        assert b"not for the studio" not in answer.content and not answer.content.startswith(
            b"\x00\x00\x00")  # no file bytes came back
    from urllib.parse import unquote  # noqa: PLC0415

    name = unquote(escape)
    for path, body in [("/api/save", {"video": name, "actions": [{"at": 0, "pos": 1}]}),
                       ("/api/save", {"video": name, "kind": "truth",
                                      "actions": [{"at": 0, "pos": 1}]}),
                       ("/api/settings", {"video": name, "crop": "full"}),
                       ("/api/jobs", {"videos": [name]}),
                       ("/api/redo", {"video": name})]:
        answer = client.post(path, json=body, headers=headers)
        assert answer.status_code == 400, (path, answer.text)
    assert (_tree(outside), sorted(p.name for p in outside.parent.iterdir())) == before
    assert studio.jobs.snapshot() == [] and studio.state.videos.data["videos"] == {}


def test_static_files_stay_in_the_package(make_studio, library: Path) -> None:
    studio, client = make_studio(library, start=False)
    headers = token_headers(studio)
    assert client.get("/static/viewer.js", headers=headers).status_code == 200
    for name in ("../app.py", "..%2fapp.py", "%2e%2e/security.py", "/etc/hostname"):
        assert client.get(f"/static/{name}", headers=headers).status_code in (400, 404), name


@pytest.mark.parametrize("relative", ["a.mp4", "sub/b.mp4", "deep/er/c.mkv"])
def test_inside_keeps_plain_names(tmp_path: Path, relative: str) -> None:
    assert security.inside(tmp_path, relative) == (tmp_path / relative).resolve()
