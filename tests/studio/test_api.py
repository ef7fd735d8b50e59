"""Every endpoint of the studio doing its job: the library and its states, the queue (the
same actions as `fsrun VIDEO`, progress, cancel, a restart), the viewer (raw positions,
post-processing redone from memory, frames, ranges), saving, crop, compare, models, training."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fsrun import cli
from fsrun.files.funscript import build_funscript, read_funscript, write_funscript
from fsrun.studio import jobs as jobs_module
from fsrun.studio import training
from fsrun.studio.app import Studio
from fsrun.studio.viewer import EDITED_BY

from .conftest import token_headers, videos_in, wait_for


def _done(client, headers, count: int = 1):
    def check():
        jobs = client.get("/api/jobs", headers=headers).json()["jobs"]
        finished = [j for j in jobs if j["status"] not in ("queued", "running")]
        return jobs if len(finished) >= count else None
    try:
        return wait_for(check, timeout=30)
    except BaseException:
        print(client.get("/api/jobs", headers=headers).json())
        raise


def test_pages_and_static_files(make_studio, library: Path) -> None:
    studio, client = make_studio(library, start=False)
    headers = token_headers(studio)
    assert "Library" in client.get("/", headers=headers).text
    assert 'id="timeline"' in client.get("/viewer?video=x.mp4", headers=headers).text
    for name, kind in [("studio.js", "javascript"), ("style.css", "css")]:
        answer = client.get(f"/static/{name}", headers=headers)
        assert answer.status_code == 200 and kind in answer.headers["content-type"]
    assert client.get("/static/nothing.js", headers=headers).status_code == 404
    info = client.get("/api/info", headers=headers).json()
    assert info["folder"] == str(library.resolve()) and info["model"].endswith("demo.fsmodel")


def test_library_states_and_durations(make_studio, library: Path) -> None:
    names = videos_in(library)
    fsrun_script, creator_script = (library / n for n in names[:2])
    assert cli.main([str(fsrun_script), "--model", str(studio_model(make_studio, library)),
                     "-q", "--stride", "10"]) == 0
    write_funscript(creator_script.with_suffix(".funscript"),
                    build_funscript([{"at": 0, "pos": 0}, {"at": 500, "pos": 100}],
                                    {"title": "mine"}))
    (library / names[2]).with_suffix(".truth.funscript").unlink()
    (library / "sub").mkdir()
    shutil.copy(library / names[2], library / "sub" / "nested.mp4")
    studio, client = make_studio(library, start=False)
    headers = token_headers(studio)

    def listed():
        rows = client.get("/api/library", headers=headers).json()["videos"]
        return rows if all(r["duration_s"] is not None for r in rows) else None

    rows = {r["video"]: r for r in wait_for(listed, timeout=30)}
    assert sorted(rows) == sorted([*names, "sub/nested.mp4"])  # .fsrun-studio is not listed
    assert rows[names[0]]["script"]["kind"] == "fsrun"
    assert rows[names[0]]["script"]["options"]["stride"] == 10
    assert rows[names[0]]["script"]["model"] == "demo.fsmodel"
    assert rows[names[1]]["script"] == {"kind": "creator"}
    assert rows[names[2]]["script"] == {"kind": "none"} and not rows[names[2]]["truth"]
    assert rows[names[0]]["truth"] and rows[names[1]]["truth"]
    assert all(abs(r["duration_s"] - 3.0) < 0.1 for r in rows.values())
    assert rows[names[0]]["bytes"] == (library / names[0]).stat().st_size
    # The index is kept: a new studio lists every duration at once.
    studio2, client2 = make_studio(library, start=False)
    first = client2.get("/api/library", headers=token_headers(studio2)).json()["videos"]
    assert all(r["duration_s"] is not None for r in first)


def studio_model(make_studio, library: Path) -> Path:
    studio, _ = make_studio(library, start=False)
    return studio.spec.model


def test_queued_script_equals_the_command_line(make_studio, library: Path, tmp_path: Path,
                                               demo_package: Path) -> None:
    name = videos_in(library)[0]
    elsewhere = tmp_path / "cli"
    elsewhere.mkdir()
    shutil.copy(library / name, elsewhere / name)
    options = {"stride": 10, "min_amplitude": 20, "rdp_epsilon": 2}
    assert cli.main([str(elsewhere / name), "--model", str(demo_package), "-q", "--stride",
                     "10", "--min-amplitude", "20", "--rdp", "2", "--no-cache"]) == 0
    studio, client = make_studio(library)
    heard = studio.events.listen()
    headers = token_headers(studio)
    added = client.post("/api/jobs", json={"videos": [name], "options": options},
                        headers=headers).json()["added"]
    assert len(added) == 1 and added[0]["options"]["stride"] == 10
    # Queueing it again while it waits or runs adds nothing.
    client.post("/api/jobs", json={"videos": [name]}, headers=headers)
    jobs = _done(client, headers)
    assert [j["status"] for j in jobs] == ["done"], jobs
    assert "actions from 90 frames" in jobs[0]["detail"]
    ours = read_funscript(library / Path(name).with_suffix(".funscript"))
    theirs = read_funscript(elsewhere / Path(name).with_suffix(".funscript"))
    assert ours["actions"] == theirs["actions"]
    assert ours["metadata"]["options"]["min_amplitude"] == 20
    events = []
    while not heard.empty():
        events.append(heard.get())
    progress = [e["progress"] for e in events if e["type"] == "progress"]
    assert progress and progress[-1]["frames"] == 90 and progress[-1]["total"] == 90
    assert {"queued", "running", "done"} <= {e["job"]["status"] for e in events
                                              if e["type"] == "job"}


def test_a_running_job_is_cancelled_at_a_batch_and_resumes_later(make_studio,
                                                                  library: Path) -> None:
    name = videos_in(library)[0]
    studio, client = make_studio(library, start=False)
    publish = studio.jobs.publish

    def cancel_on_progress(event: dict) -> None:  # the person presses Cancel mid-run
        publish(event)
        if event["type"] == "progress" and event["progress"]["frames"] >= 16:
            assert client.post(f"/api/jobs/{event['id']}/cancel",
                               headers=token_headers(studio)).status_code == 200

    studio.jobs.publish = cancel_on_progress
    headers = token_headers(studio)
    client.post("/api/jobs", json={"videos": [name], "options": {"stride": 15}}, headers=headers)
    studio.jobs.start()
    jobs = _done(client, headers)
    assert jobs[0]["status"] == "cancelled" and "cache" in jobs[0]["detail"]
    assert not (library / name).with_suffix(".funscript").exists()
    studio.jobs.publish = publish
    client.post("/api/jobs", json={"videos": [name]}, headers=headers)
    jobs = _done(client, headers, count=2)
    assert jobs[-1]["status"] == "done" and (library / name).with_suffix(".funscript").exists()
    assert client.post("/api/jobs/nothing/cancel", headers=headers).status_code == 404


def test_the_queue_survives_a_restart(make_studio, library: Path) -> None:
    names = videos_in(library)
    studio, client = make_studio(library, start=False)
    headers = token_headers(studio)
    client.post("/api/jobs", json={"videos": names}, headers=headers)
    removed = client.post(f"/api/jobs/{studio.jobs.snapshot()[2]['id']}/cancel",
                          headers=headers).json()
    assert removed["status"] == "cancelled"
    studio.jobs.jobs[0]["status"] = "running"  # the studio stopped in the middle of a job
    studio.state.queue.save()
    studio.close()
    again, client = make_studio(library, start=False)
    restored = again.jobs.snapshot()
    assert [j["video"] for j in restored] == names
    assert [j["status"] for j in restored][:2] == ["queued", "queued"]
    assert "restart" in restored[0]["detail"]
    again.jobs.start()
    jobs = _done(client, token_headers(again), count=3)
    assert [j["status"] for j in jobs] == ["done", "done", "cancelled"]
    client.post("/api/jobs/clear", headers=token_headers(again))
    assert again.jobs.snapshot() == []


def test_a_failing_video_fails_its_job_only(make_studio, library: Path) -> None:
    good = videos_in(library)[0]
    (library / "broken.mp4").write_bytes(b"\x00" * 4096)
    studio, client = make_studio(library)
    headers = token_headers(studio)
    client.post("/api/jobs", json={"videos": ["broken.mp4", good]},
                headers=headers)
    jobs = {j["video"]: j for j in _done(client, headers, count=2)}
    # the row names the video; its detail says why, as folder mode's table does
    assert jobs["broken.mp4"]["status"] == "failed"
    assert "cannot open as a video" in jobs["broken.mp4"]["detail"]
    assert jobs[good]["status"] == "done"


def test_viewer_redoes_post_processing_from_memory(make_studio, library: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    name = videos_in(library)[0]
    assert cli.main([str(library / name), "--model", str(studio_model(make_studio, library)),
                     "-q", "--stride", "10", "--min-amplitude", "25"]) == 0
    studio, client = make_studio(library, start=False)
    headers = token_headers(studio)
    heard = studio.events.listen()
    look = client.get(f"/api/look?video={name}", headers=headers).json()
    # The first look takes the options of the script fsrun wrote, and draws what it wrote.
    assert look["stride"] == 10 and look["options"]["min_amplitude"] == 25
    assert look["actions"] == look["script"] and len(look["raw"]["at"]) == 90
    assert look["duration_ms"] == 3000 and look["playable"] and look["codec"] == "h264"
    assert look["truth"] and look["crop"] == "full"
    stages = {e["stage"] for e in _drain(heard) if e["type"] == "viewer"}
    assert stages == {"encode", "head"}  # the first look encoded the video: progress for both
    runs = []
    real = studio.viewer.session.positions
    monkeypatch.setattr(studio.viewer.session, "positions",
                        lambda cfg, hooks=None: runs.append(cfg.stride) or real(cfg, hooks))
    for options in ({"min_amplitude": 5}, {"rdp_epsilon": 0}, {"invert": True},
                    {"stretch_percentile": 5}, {"offset_ms": 100}, {"raw": True}):
        answer = client.post("/api/redo", json={"video": name, "stride": 10, "options": options},
                             headers=headers).json()
        assert answer["actions"] and answer["seconds"] < 5
    assert runs == []  # none of them ran the model again
    raw = client.post("/api/redo", json={"video": name, "stride": 10, "options": {"raw": True}},
                      headers=headers).json()["actions"]
    assert [a["at"] for a in raw] == [round(t) for t in look["raw"]["at"]]
    inverted = client.post("/api/redo", json={"video": name, "stride": 10,
                                              "options": {"invert": True, "raw": True}},
                           headers=headers).json()["actions"]
    assert [a["pos"] + b["pos"] for a, b in zip(raw, inverted)] == [100] * len(raw)
    client.get(f"/api/look?video={name}&stride=30&options={{}}", headers=headers)
    assert runs == [30]  # a stride runs the head: from the cache, with its progress told
    assert [e["stage"] for e in _drain(heard) if e["type"] == "viewer"] == ["head"]
    bad = client.post("/api/redo", json={"video": name, "options": {"min_amplitude": -1}},
                      headers=headers)
    assert bad.status_code == 400 and "min amplitude" in bad.json()["error"]  # the page's words


def _drain(listener) -> list[dict]:
    events = []
    while not listener.empty():
        events.append(listener.get())
    return events


def test_frames_and_media_ranges(make_studio, library: Path) -> None:
    name = videos_in(library)[0]
    studio, client = make_studio(library, start=False)
    headers = token_headers(studio)
    frame = client.get(f"/api/frame?video={name}&at=1500", headers=headers)
    assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg"
    assert frame.content[:2] == b"\xff\xd8" and frame.content[-2:] == b"\xff\xd9"
    whole = (library / name).read_bytes()
    part = client.get(f"/api/media?video={name}", headers={**headers, "range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole)}"
    assert client.get(f"/api/media?video={name}", headers=headers).content == whole
    assert client.get("/api/media?video=none.mp4", headers=headers).status_code == 404


def test_saving_follows_the_command_line_rules(make_studio, library: Path) -> None:
    name = videos_in(library)[0]
    script = (library / name).with_suffix(".funscript")
    studio, client = make_studio(library, start=False)
    headers = token_headers(studio)
    points = [{"at": 500, "pos": 80}, {"at": 0, "pos": 10.4}, {"at": 500, "pos": 3}]
    saved = client.post("/api/save", json={"video": name, "actions": points},
                        headers=headers).json()
    assert saved == {"saved": script.name, "actions": 2, "backup": None}
    doc = read_funscript(script)
    assert doc["actions"] == [{"at": 0, "pos": 10}, {"at": 500, "pos": 80}]
    assert doc["metadata"]["generator"]["name"] == EDITED_BY
    # An existing script is replaced only when the person confirmed.
    again = client.post("/api/save", json={"video": name, "actions": [{"at": 0, "pos": 50}, {"at": 700, "pos": 5}]},
                        headers=headers)
    assert again.status_code == 409 and "replace" in again.json()["error"]
    assert "--force" not in again.json()["error"]  # the page's words, not the flag
    assert read_funscript(script)["actions"][1] == {"at": 500, "pos": 80}
    client.post("/api/save", json={"video": name, "actions": [{"at": 0, "pos": 50}, {"at": 700, "pos": 5}],
                                   "replace": True}, headers=headers)
    assert read_funscript(script)["actions"] == [{"at": 0, "pos": 50}, {"at": 700, "pos": 5}]
    # Labels: the truth file, which fsexport train reads; replacing it needs a confirmation.
    truth = (library / name).with_suffix(".truth.funscript")
    refused = client.post("/api/save", json={"video": name, "kind": "truth",
                                             "actions": [{"at": 0, "pos": 1}, {"at": 9, "pos": 2}]}, headers=headers)
    assert refused.status_code == 409
    client.post("/api/save", json={"video": name, "kind": "truth", "replace": True,
                                   "actions": [{"at": 0, "pos": 1}, {"at": 900, "pos": 99}]},
                headers=headers)
    assert read_funscript(truth)["actions"][1] == {"at": 900, "pos": 99}
    # Something that is not a funscript is never replaced, confirmed or not.
    other = library / "notes.mp4"
    shutil.copy(library / name, other)
    other.with_suffix(".funscript").write_text("my notes, not a funscript")
    refused = client.post("/api/save", json={"video": "notes.mp4", "replace": True,
                                             "actions": [{"at": 0, "pos": 1}, {"at": 9, "pos": 2}]}, headers=headers)
    assert refused.status_code == 409
    assert other.with_suffix(".funscript").read_text() == "my notes, not a funscript"
    assert client.post("/api/save", json=[1, 2], headers=headers).status_code == 400
    assert client.post("/api/save", content=b"{", headers=headers).status_code == 400


def test_crop_is_kept_per_video_and_used_by_its_runs(make_studio, library: Path) -> None:
    name = videos_in(library)[0]
    studio, client = make_studio(library)
    headers = token_headers(studio)
    bad = client.post("/api/settings", json={"video": name, "crop": "middle"}, headers=headers)
    assert bad.status_code == 400
    kept = client.post("/api/settings", json={"video": name, "crop": "8,8,48,40"},
                       headers=headers).json()
    assert kept == {"crop": "8,8,48,40"}
    assert json.loads((library / ".fsrun-studio" / "videos.json").read_text())["videos"][name]
    look = client.get(f"/api/look?video={name}", headers=headers).json()
    assert look["crop"] == "8,8,48,40"
    client.post("/api/jobs", json={"videos": [name]}, headers=headers)
    assert _done(client, headers)[0]["status"] == "done"
    written = read_funscript((library / name).with_suffix(".funscript"))
    assert written["metadata"]["options"]["crop_box"] == [8, 8, 48, 40]


def test_compare_gives_r_and_lag(make_studio, library: Path) -> None:
    studio, client = make_studio(library, start=False)
    track = [{"at": t, "pos": 50 + (40 if (t // 400) % 2 else -40)} for t in range(0, 8000, 100)]
    late = [{"at": p["at"] + 200, "pos": p["pos"]} for p in track]
    headers = token_headers(studio)
    same = client.post("/api/compare", json={"video": "a.mp4", "first": track, "second": track},
                       headers=headers).json()
    assert same["r"] == pytest.approx(1.0) and same["lag_ms"] == 0
    shifted = client.post("/api/compare", json={"video": "a.mp4", "first": track,
                                                "second": late}, headers=headers).json()
    assert abs(abs(shifted["lag_ms"]) - 200) <= 50
    few = client.post("/api/compare", json={"video": "a.mp4", "first": track[:2],
                                            "second": track}, headers=headers).json()
    assert few["r"] is None


def test_training_says_what_to_install(make_studio, library: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(training.importlib.util, "find_spec",
                        lambda name: None if name == "torch" else object())
    studio, client = make_studio(library, start=False)
    headers = token_headers(studio)
    assert "fsexport[torch]" in client.get("/api/train", headers=headers).json()["missing"]
    answer = client.post("/api/train", json={"epochs": 1}, headers=headers).json()
    assert answer["status"] == "unavailable" and "fsexport[torch]" in answer["detail"]


def test_the_trained_model_is_offered_and_used(make_studio, library: Path,
                                               demo_package: Path) -> None:
    name = videos_in(library)[0]
    studio, client = make_studio(library)
    headers = token_headers(studio)
    models = client.get("/api/model", headers=headers).json()
    assert models["current"] == "started"
    assert [c["available"] for c in models["choices"]] == [True, False]
    refused = client.post("/api/model", json={"model": "trained"}, headers=headers)
    assert refused.status_code == 400 and "train" in refused.text
    shutil.copytree(demo_package, studio.training.package)  # what Train leaves behind
    chosen = client.post("/api/model", json={"model": "trained"}, headers=headers).json()
    assert chosen["current"] == "trained"
    assert client.get("/api/info", headers=headers).json()["model"] == str(
        studio.training.package)
    client.post("/api/jobs", json={"videos": [name]}, headers=headers)
    assert _done(client, headers)[0]["status"] == "done"
    written = read_funscript((library / name).with_suffix(".funscript"))
    assert written["metadata"]["model"]["name"] == "trained.fsmodel"
    look = client.get(f"/api/look?video={name}", headers=headers).json()
    assert look["script"] == look["actions"]


def test_studio_state_files_survive_damage(library: Path, demo_package: Path) -> None:
    from fsrun.run.request import SessionSpec  # noqa: PLC0415

    state = library / ".fsrun-studio"
    state.mkdir()
    (state / "queue.json").write_text("{not json")
    studio = Studio(library, SessionSpec(model=demo_package))
    assert studio.jobs.snapshot() == [] and (state / "queue.json.damaged").exists()
    studio.close()


def test_job_options_are_limited_to_what_a_run_takes() -> None:
    assert set(jobs_module.JOB_OPTIONS) >= {"stride", "crop", "min_amplitude", "rdp_epsilon"}
    assert "output" not in jobs_module.JOB_OPTIONS and "model" not in jobs_module.JOB_OPTIONS


@pytest.mark.parametrize("body", [
    {"actions": [{"at": float("inf"), "pos": 50}, {"at": 100, "pos": 20}]},
    {"actions": [{"at": float("nan"), "pos": 50}, {"at": 100, "pos": 20}]},
    {"actions": [{"at": 1e30, "pos": 50}, {"at": 100, "pos": 20}]},
    {"actions": [{"at": 0, "pos": float("inf")}, {"at": 100, "pos": 20}]},
    {"actions": [{"at": "soon", "pos": 50}, {"at": 100, "pos": 20}]},
    {"actions": "all of them"},
], ids=["at_inf", "at_nan", "at_1e30", "pos_inf", "at_text", "not_a_list"])
def test_a_save_with_numbers_no_script_can_hold_is_400(body: dict, make_studio,
                                                       library: Path) -> None:
    studio, client = make_studio(library, start=False)
    video = videos_in(library)[0]
    payload = json.dumps({"video": video, **body})  # NaN and Infinity, as a script could send
    response = client.post("/api/save", content=payload,
                           headers={**token_headers(studio), "content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert not (library / Path(video).with_suffix(".funscript").name).exists()


@pytest.mark.parametrize("at", ["nan", "inf", "-1", "1e30", "x"])
def test_a_frame_at_no_time_is_400(at: str, make_studio, library: Path) -> None:
    studio, client = make_studio(library, start=False)
    response = client.get("/api/frame", params={"video": videos_in(library)[0], "at": at},
                          headers=token_headers(studio))
    assert response.status_code == 400, response.text


def test_a_listener_that_never_reads_does_not_stop_a_job(make_studio, library: Path) -> None:
    """A page that stalls (a tab in the background) holds events it never reads: the worker
    publishing progress must never wait for it (it used to block on the 1001st event)."""
    from fsrun.studio.app import LISTENER_BACKLOG

    studio, client = make_studio(library)
    stuck = studio.events.listen()  # never read
    for i in range(LISTENER_BACKLOG + 500):  # the backlog is full before the job starts
        studio.events.publish({"type": "noise", "i": i})
    assert stuck.qsize() == LISTENER_BACKLOG
    headers = token_headers(studio)
    videos = videos_in(library)
    client.post("/api/jobs", json={"videos": videos, "options": {"force": True}},
                headers=headers)
    jobs = _done(client, headers, count=len(videos))
    assert [j["status"] for j in jobs] == ["done"] * len(videos), jobs
    newest = [stuck.get_nowait() for _ in range(stuck.qsize())]
    assert newest[-1]["type"] != "noise"  # it kept the newest events, the job's among them


def test_the_queue_and_a_folder_run_write_each_video_once(demo_package: Path, library: Path,
                                                          tmp_path: Path) -> None:
    """`fsrun FOLDER --force` and the studio's queue (force too) on one folder at once: the one
    runner's claim makes every video one process's work; the other skips it."""
    import os
    import subprocess
    import sys
    import threading
    import time as _time

    from fsrun.run.plan import create_backend
    from fsrun.run.request import RunHooks, SessionSpec
    from starlette.testclient import TestClient

    from fsrun.studio.app import build_app

    class Slow:
        def __init__(self, inner):
            self.inner = inner

        def run(self, batch):
            _time.sleep(0.2)
            return self.inner.run(batch)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    def slow(name, path, options):
        backend = create_backend(name, path, options)
        return Slow(backend) if Path(path).name.startswith("encoder") else backend

    videos = videos_in(library)
    helper = Path(__file__).resolve().parents[1] / "reliability" / "slow_fsrun.py"
    env = {**os.environ, "FSRUN_TEST_ENCODER_DELAY": "0.2"}
    folder_run = subprocess.Popen([sys.executable, str(helper), str(library), "--model",
                                   str(demo_package), "--no-cache", "--force"],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(folder_run.stderr), daemon=True)
    reader.start()
    studio = Studio(library, SessionSpec(model=demo_package, use_cache=False), port=8765,
                    hooks=RunHooks(quiet=True, progress=False, backend_factory=slow))
    try:
        studio.jobs.start()
        client = TestClient(build_app(studio), base_url="http://127.0.0.1:8765")
        headers = token_headers(studio)
        # "N videos under LIB": the folder run has started its run; queue them now, in the
        # other order, so that the two meet in the middle.
        wait_for(lambda: any("videos under" in line for line in lines), timeout=120)
        client.post("/api/jobs", json={"videos": videos[::-1], "options": {"force": True}},
                    headers=headers)
        jobs = {j["video"]: j for j in _done(client, headers, count=len(videos))}
        out = folder_run.stdout.read()
        folder_run.wait(timeout=300)
        reader.join(timeout=10)
        err = "".join(lines)
    finally:
        studio.close()
        if folder_run.poll() is None:
            folder_run.kill()
    assert folder_run.returncode == 0, err
    rows = {line.split()[1]: line.split()[0] for line in out.splitlines()
            if line.split() and line.split()[0] in ("ok", "skipped", "failed")}
    for video in videos:
        wrote = [rows[video] == "ok", jobs[video]["status"] == "done"]
        assert sum(wrote) == 1, (video, rows[video], jobs[video])
        assert "skipped" in (rows[video], jobs[video]["status"])
    assert any(jobs[v]["status"] == "done" for v in videos)  # they did meet
    assert any(rows[v] == "ok" for v in videos)


def test_the_pages_hold_no_defaults_the_api_serves_them(make_studio, library: Path) -> None:
    from fsrun import defaults
    from fsrun.studio.app import STATIC

    studio, client = make_studio(library, start=False)
    served = client.get("/api/info", headers=token_headers(studio)).json()["defaults"]
    assert served == defaults.as_dict() and served["stride"] == defaults.DEFAULT_STRIDE
    for page in ("library.html", "viewer.html"):
        html = (STATIC / page).read_text()
        for field in ("stride", "min_amplitude", "rdp_epsilon", "offset_ms", "epochs"):
            tag = next((t for t in html.split("<input")[1:] if f'id="{field}"' in t), "")
            assert "value=" not in tag.split(">")[0], (page, field)
    for script in ("library.js", "viewer.js", "studio.js"):
        assert "|| 15" not in (STATIC / script).read_text()


def test_links_that_cannot_be_opened_are_rows_never_a_blank_library(make_studio,
                                                                      library: Path,
                                                                      tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.mp4").write_bytes(b"not for the studio")
    names = videos_in(library)
    (library / "leak.mp4").symlink_to(outside / "secret.mp4")
    (library / "gone.mp4").symlink_to(library / "nothing-here.mp4")
    (library / "again.mp4").symlink_to(library / names[0])  # the same video, another name
    studio, client = make_studio(library, start=False)
    answer = client.get("/api/library", headers=token_headers(studio))
    assert answer.status_code == 200, answer.text
    rows = {row["video"]: row for row in answer.json()["videos"]}
    assert "out of the folder" in rows["leak.mp4"]["problem"]
    assert "not there" in rows["gone.mp4"]["problem"]
    assert "again.mp4" not in rows  # listed once, under its own name
    assert all(not rows[name].get("problem") for name in names)
    # and none of them can be run, viewed or saved through
    headers = token_headers(studio)
    for name in ("leak.mp4", "gone.mp4"):
        assert client.get("/api/frame", params={"video": name, "at": 0},
                          headers=headers).status_code == 400


@pytest.mark.parametrize("body", [
    {"video": ".", "actions": [{"at": 0, "pos": 0}, {"at": 100, "pos": 90}]},
    {"video": "", "actions": [{"at": 0, "pos": 0}, {"at": 100, "pos": 90}]},
    {"video": "nothing.mp4", "actions": [{"at": 0, "pos": 0}, {"at": 100, "pos": 90}]},
    {"video": "sub", "actions": [{"at": 0, "pos": 0}, {"at": 100, "pos": 90}]},
    {"video": "x" * 5000 + ".mp4", "actions": [{"at": 0, "pos": 0}, {"at": 100, "pos": 90}]},
    {"video": "VIDEO", "actions": [{"at": 0, "pos": 0}]},
    {"video": "VIDEO", "actions": []},
    {"video": "VIDEO", "actions": [{"at": 0, "pos": 0}, {"at": 1e9, "pos": 90}]},
    {"video": "VIDEO", "actions": [{"at": 0}, {"at": 100, "pos": 90}]},
    {"video": "VIDEO", "kind": "other", "actions": [{"at": 0, "pos": 0}, {"at": 9, "pos": 9}]},
    {"video": 7, "actions": [{"at": 0, "pos": 0}, {"at": 100, "pos": 90}]},
], ids=["dot", "empty", "missing", "folder", "5000_chars", "one_point", "no_points",
        "past_the_end", "no_pos", "unknown_kind", "number_as_name"])
def test_a_malformed_save_is_400_and_writes_nothing(body: dict, make_studio,
                                                    library: Path) -> None:
    (library / "sub").mkdir()
    video = videos_in(library)[0]
    body = {**body, "video": video if body["video"] == "VIDEO" else body["video"]}
    scripts = sorted(library.parent.rglob("*.funscript"))  # the truth files
    studio, client = make_studio(library, start=False)
    answer = client.post("/api/save", json=body, headers=token_headers(studio))
    assert answer.status_code == 400, answer.text
    assert sorted(library.parent.rglob("*.funscript")) == scripts  # nothing written anywhere


@pytest.mark.parametrize("path,body", [
    ("/api/compare", {"video": "VIDEO", "first": "x", "second": []}),
    ("/api/compare", {"video": "VIDEO"}),
    ("/api/redo", {"video": "VIDEO", "options": [1, 2]}),
    ("/api/redo", {"video": "VIDEO", "stride": "fast"}),
    ("/api/redo", {"video": "VIDEO", "crop": {"x": 1}}),
    ("/api/jobs", {"videos": ["."], "options": {}}),
], ids=["compare_text", "compare_missing", "redo_list", "redo_stride", "redo_crop", "job_dot"])
def test_other_malformed_bodies_are_400(path: str, body: dict, make_studio,
                                        library: Path) -> None:
    video = videos_in(library)[0]
    body = {k: (video if v == "VIDEO" else v) for k, v in body.items()}
    studio, client = make_studio(library, start=False)
    answer = client.post(path, json=body, headers=token_headers(studio))
    assert answer.status_code == 400, answer.text


def test_replacing_a_script_keeps_a_backup_and_its_provenance(make_studio,
                                                              library: Path) -> None:
    video = videos_in(library)[0]
    assert cli.main([str(library / video), "--model", str(studio_model(make_studio, library)),
                     "-q"]) == 0
    script = library / Path(video).with_suffix(".funscript").name
    made = script.read_bytes()
    studio, client = make_studio(library, start=False)
    points = [{"at": 0, "pos": 10}, {"at": 500, "pos": 90}, {"at": 900, "pos": 20}]
    first = client.post("/api/save", json={"video": video, "actions": points, "replace": True},
                        headers=token_headers(studio)).json()
    assert first["backup"] == script.name + ".bak"
    assert (library / first["backup"]).read_bytes() == made  # what fsrun wrote, kept
    meta = read_funscript(script)["metadata"]
    assert meta["edited"] is True and meta["generator"]["name"] == EDITED_BY
    assert meta["edited_from"]["model"]["name"] == "demo.fsmodel"
    assert meta["edited_from"]["options"]["stride"] == 15
    second = client.post("/api/save", json={"video": video, "actions": points[:2],
                                            "replace": True},
                         headers=token_headers(studio)).json()
    assert second["backup"] == script.name + ".bak.2"  # every replaced script is kept
    assert read_funscript(script)["metadata"]["edited_from"]["model"]["name"] == "demo.fsmodel"


def test_a_job_running_when_the_studio_stops_runs_again_after_a_restart(make_studio,
                                                                        library: Path) -> None:
    """Ctrl-C stops the studio mid-job: not the person's cancel; the next start runs it."""
    import threading

    name = videos_in(library)[0]
    studio, client = make_studio(library, start=False)
    publish = studio.jobs.publish
    stopper = threading.Event()

    def stop_on_progress(event: dict) -> None:
        publish(event)
        if event["type"] == "progress" and event["progress"]["frames"] >= 16:
            stopper.set()

    studio.jobs.publish = stop_on_progress
    client.post("/api/jobs", json={"videos": [name]}, headers=token_headers(studio))
    studio.jobs.start()
    assert stopper.wait(timeout=60)
    studio.close()  # what Ctrl-C does: the worker stops at its next batch
    [stopped] = studio.jobs.snapshot()
    assert stopped["status"] == "queued" and "studio stopped" in stopped["detail"]
    again, client = make_studio(library)
    jobs = _done(client, token_headers(again))
    assert jobs[0]["status"] == "done" and "resumed after" in jobs[0]["detail"]
    assert (library / name).with_suffix(".funscript").exists()


def test_the_queue_pauses_resumes_and_reorders(make_studio, library: Path) -> None:
    names = videos_in(library)
    studio, client = make_studio(library, start=False)
    headers = token_headers(studio)
    assert client.post("/api/jobs/pause", json={"paused": True}, headers=headers).json() == \
        {"paused": True}
    client.post("/api/jobs", json={"videos": names}, headers=headers)
    ids = [j["id"] for j in studio.jobs.snapshot()]
    moved = client.post(f"/api/jobs/{ids[2]}/move", json={"direction": "up"}, headers=headers)
    assert moved.status_code == 200
    assert [j["video"] for j in studio.jobs.snapshot()] == [names[0], names[2], names[1]]
    assert client.post(f"/api/jobs/{ids[0]}/move", json={"direction": "sideways"},
                       headers=headers).status_code == 400
    assert client.post("/api/jobs/pause", json={"paused": "yes"}, headers=headers).status_code \
        == 400
    studio.jobs.start()
    import time as _time

    _time.sleep(1.5)  # paused: nothing starts
    assert {j["status"] for j in studio.jobs.snapshot()} == {"queued"}
    listing = client.get("/api/jobs", headers=headers).json()
    assert listing["paused"] is True
    client.post("/api/jobs/pause", json={"paused": False}, headers=headers)
    jobs = _done(client, headers, count=3)
    finished = sorted(jobs, key=lambda j: j["finished"])
    assert [j["video"] for j in finished] == [names[0], names[2], names[1]]  # the new order
    assert all(j["status"] == "done" for j in jobs)
    assert client.post("/api/train/cancel", json={}, headers=headers).json()["status"] != \
        "cancelled"  # nothing was training
