"""Never a wrong script with exit 0: the inputs real users bring, one test per case.

Each test builds the reproduction (a model whose weights live in a .data file, a clock that starts
at 600 s, a cut-off AVI, a model with the wrong output, a video replaced in place, a cache folder
removed mid-run, long names, NaN, a second process, signals) and pins what the run must do: the
right script, or one line with its exit code and nothing left behind.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import badfiles
import edgefiles
import numpy as np
import onnx
import pytest
from conftest import clean_actions_of, start_fsrun

from fsrun.errors import Interrupted, ModelError, OutputError, UsageError
from fsrun.files.funscript import read_funscript
from fsrun.model.package import load_package



def _actions(path: Path) -> list[dict]:
    return read_funscript(path)["actions"]


def _packages(cache: Path) -> list[Path]:
    folder = cache / "packages"
    return sorted(p for p in folder.iterdir() if p.name.endswith(".fsmodel")) \
        if folder.is_dir() else []


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 150-frame clip at 30 fps (5 s)."""
    return badfiles.write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", count=150)


# -- 1. an ONNX model whose weights live in an external .data file ---------------------------

def test_rewriting_only_the_data_file_is_a_new_model(tmp_path: Path, clip: Path,
                                                     fsrun_cli) -> None:
    model = edgefiles.tiny_onnx(tmp_path / "d" / "m.onnx", ["B", 60], external="m.onnx.data")
    graph_bytes = model.read_bytes()
    first = fsrun_cli(clip, "--model", model, "--raw", "-o", tmp_path / "first.funscript")
    assert first.code == 0, first.err
    assert "cut m.onnx into encoder and head" in first.err
    # Retrain: new weights of the same shapes, written to the .data file only.
    retrained = edgefiles.tiny_onnx(tmp_path / "r" / "m.onnx", ["B", 60], seed=1,
                                    external="m.onnx.data")
    shutil.copyfile(retrained.with_name("m.onnx.data"), model.with_name("m.onnx.data"))
    assert model.read_bytes() == graph_bytes  # the .onnx file did not change at all
    second = fsrun_cli(clip, "--model", model, "--raw", "-o", tmp_path / "second.funscript")
    assert second.code == 0, second.err
    assert "cut m.onnx into encoder and head" in second.err  # a new package, not the old one
    assert "decoder: cache" not in second.err  # and not the old model's embeddings
    fresh = fsrun_cli(clip, "--model", retrained, "--raw", "--no-cache",
                      "-o", tmp_path / "fresh.funscript")
    assert fresh.code == 0, fresh.err
    assert _actions(tmp_path / "second.funscript") == _actions(tmp_path / "fresh.funscript")
    assert _actions(tmp_path / "second.funscript") != _actions(tmp_path / "first.funscript")
    meta = json.loads((_packages(Path(os.environ["FSRUN_CACHE_DIR"]))[-1] / "meta.json")
                      .read_text())
    assert list(meta["provenance"]["source"]["data_files"]) == ["m.onnx.data"]


@pytest.mark.parametrize("where", ["parent", "absolute", "symlink"])
def test_weights_outside_the_model_folder_are_refused(where: str, tmp_path: Path, clip: Path,
                                                      fsrun_cli) -> None:
    folder = tmp_path / "shared" / "model"
    model = edgefiles.tiny_onnx(folder / "m.onnx", ["B", 60], external="m.onnx.data")
    secret = tmp_path / "shared" / "secret.data"
    shutil.move(folder / "m.onnx.data", secret)
    if where == "symlink":
        (folder / "m.onnx.data").symlink_to(secret)
    else:
        loaded = onnx.load(str(model), load_external_data=False)
        location = "../secret.data" if where == "parent" else str(secret)
        for tensor in loaded.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = location
        onnx.save(loaded, str(model))
    result = fsrun_cli(clip, "--model", model, "-o", tmp_path / "out.funscript")
    assert result.code == ModelError.exit_code, result.err
    assert "outside the model's folder" in result.last_line
    assert not (tmp_path / "out.funscript").exists()
    assert _packages(Path(os.environ["FSRUN_CACHE_DIR"])) == []


# -- 2. containers whose timestamps do not start at 0 ---------------------------------------

OFFSETS = {"ts_600s": (".ts", "mpegts", 600.0), "mkv_600s": (".mkv", "matroska", 600.0),
           "mp4_edit_list_2s": (".mp4", "mp4", 2.0)}


@pytest.mark.parametrize("case", sorted(OFFSETS))
def test_times_start_where_players_start(case: str, tmp_path: Path, clip: Path,
                                         demo_package: Path, fsrun_cli) -> None:
    suffix, container, offset = OFFSETS[case]
    video = edgefiles.remux(clip, tmp_path / f"late{suffix}", offset, container)
    with av.open(str(video)) as probe:  # FFmpeg's (ffprobe's) start_time
        start_ms = probe.start_time / 1000.0
    assert start_ms == pytest.approx(offset * 1000.0, abs=1.0)
    result = fsrun_cli(video, "--model", demo_package, "--raw", "--no-cache",
                       "--report", tmp_path / "r.json")
    assert result.code == 0, result.err
    assert "cut off" not in result.err
    doc = read_funscript(video.with_suffix(".funscript"))
    plain = fsrun_cli(clip, "--model", demo_package, "--raw", "--no-cache",
                      "-o", tmp_path / "plain.funscript")
    assert plain.code == 0, plain.err
    assert doc["actions"] == _actions(tmp_path / "plain.funscript")  # the same, from 0
    assert doc["metadata"]["clock_offset_ms"] == pytest.approx(start_ms)
    assert doc["metadata"]["duration"] == pytest.approx(5.0, abs=0.05)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["clock_offset_ms"] == pytest.approx(start_ms) and not report["cut_short"]
    # --start and --end are on the same clock.
    ranged = fsrun_cli(video, "--model", demo_package, "--raw", "--start", "2", "--end", "4",
                       "-o", tmp_path / "ranged.funscript")
    assert ranged.code == 0, ranged.err
    both = fsrun_cli(clip, "--model", demo_package, "--raw", "--start", "2", "--end", "4",
                     "--no-cache", "-o", tmp_path / "both.funscript")
    assert both.code == 0, both.err
    ranged_actions = _actions(tmp_path / "ranged.funscript")
    assert ranged_actions == _actions(tmp_path / "both.funscript")
    assert 2000 <= ranged_actions[0]["at"] < 2040 and ranged_actions[-1]["at"] < 4000


def test_an_edit_list_that_hides_frames_hides_them_from_the_script(tmp_path: Path, clip: Path,
                                                                   demo_package: Path,
                                                                   fsrun_cli) -> None:
    """Timestamps moved 0.5 s before 0: FFmpeg presents the frames from 0 on, and so does fsrun."""
    video = edgefiles.remux(clip, tmp_path / "early.mp4", -0.5, "mp4")
    with av.open(str(video)) as probe:
        shown = [f.time for f in probe.decode(video=0)]
    result = fsrun_cli(video, "--model", demo_package, "--raw", "--no-cache")
    assert result.code == 0, result.err
    actions = _actions(video.with_suffix(".funscript"))
    assert len(actions) == len(shown) < 150
    assert actions[0]["at"] == round(shown[0] * 1000) == 0


# -- 3. a cut-off AVI says so ----------------------------------------------------------------

@pytest.mark.parametrize("keep", [0.25, 0.5, 0.75])
def test_a_cut_off_avi_says_so(keep: float, tmp_path: Path, demo_package: Path,
                               fsrun_cli) -> None:
    whole = edgefiles.avi(tmp_path / "whole.avi", count=150, fps=25)
    video = edgefiles.cut_bytes(whole, tmp_path / "cut.avi", keep)
    result = fsrun_cli(video, "--model", demo_package, "--no-cache", "--report",
                       tmp_path / "r.json")
    assert result.code == 0, result.err
    doc = read_funscript(video.with_suffix(".funscript"))
    last = doc["metadata"]["covered_ms"][1] / 1000.0
    assert last < 6.0 * keep + 0.5
    assert f"cut.avi: cut off? frames stop at {last:.1f} s of the 6.0 s its header claims" \
        in result.err
    meta = doc["metadata"]
    # What is gone is missing, not held (nothing in this file is held).
    assert meta["frames_held"] == 0 and meta["frames_missing"] + meta["frames_damaged"] > 0
    assert json.loads((tmp_path / "r.json").read_text())["cut_short"] is True
    clean = fsrun_cli(whole, "--model", demo_package, "--no-cache")
    assert clean.code == 0 and "cut off" not in clean.err


# -- 4. an ONNX model with the wrong output is refused at import ------------------------------

@pytest.mark.parametrize("dims", [["B", 90], ["B", 60, 1], ["B", 30], None],
                         ids=["B90", "B60x1", "B30", "undeclared_B90"])
def test_an_onnx_model_with_the_wrong_output_is_refused(dims, tmp_path: Path, clip: Path,
                                                        fsrun_cli) -> None:
    out_dims = dims if dims is not None else ["B", 90]
    model = edgefiles.tiny_onnx(tmp_path / "m.onnx", out_dims)
    if dims is None:  # the same graph declaring [B, W]: found only by running it
        loaded = onnx.load(str(model))
        loaded.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "W"
        onnx.save(loaded, str(model))
    result = fsrun_cli(clip, "--model", model, "-o", tmp_path / "out.funscript")
    assert result.code == ModelError.exit_code, result.err
    assert "a model must give [B, 60] positions" in result.last_line
    assert result.err.count("fsrun: error:") == 1 and "Traceback" not in result.err
    assert not (tmp_path / "out.funscript").exists()
    cache = Path(os.environ["FSRUN_CACHE_DIR"])
    assert _packages(cache) == []
    assert [p.name for p in (cache / "packages").iterdir() if p.name != "locks"] == []


def test_a_head_giving_another_shape_fails_before_writing(tmp_path: Path, clip: Path,
                                                          package_copy: Path) -> None:
    from fsrun.run.pipeline import RunHooks, SessionSpec, VideoRequest, process_video

    class Wide:  # a head returning [B, 90]: never sliced into 60 silently
        def __init__(self, inner):
            self.inner = inner

        def run(self, batch):
            out = self.inner.run(batch)
            return np.concatenate([out, out[:, :30]], axis=1)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    from fsrun.run.plan import create_backend

    def factory(name, path, options):
        backend = create_backend(name, path, options)
        return Wide(backend) if Path(path).name.startswith("head") else backend

    axes = len(load_package(package_copy).meta.axis_names)
    shape = r"\[B, 60\]" if axes == 1 else rf"\[B, 60, {axes}\]"
    with pytest.raises(ModelError, match=rf"a model must give {shape} positions"):
        process_video(SessionSpec(model=package_copy, use_cache=False),
                      VideoRequest(video=clip, output=tmp_path / "o.funscript"),
                      RunHooks(backend_factory=factory))
    assert not (tmp_path / "o.funscript").exists()


# -- 5. a video replaced in place, same size and mtime ----------------------------------------

def test_a_video_replaced_in_place_is_not_served_from_the_cache(tmp_path: Path,
                                                                demo_package: Path,
                                                                fsrun_cli) -> None:
    (tmp_path / "src").mkdir()
    a, b = edgefiles.same_size_pair(tmp_path / "src")
    assert a.stat().st_size == b.stat().st_size
    video = tmp_path / "clip.mp4"
    shutil.copyfile(a, video)
    assert fsrun_cli(video, "--model", demo_package, "--raw").code == 0
    stat = video.stat()
    with open(video, "r+b") as f:  # cat b.mp4 > clip.mp4
        f.write(b.read_bytes())
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (video.stat().st_size, video.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    again = fsrun_cli(video, "--model", demo_package, "--raw", "--force")
    assert again.code == 0, again.err
    assert "decoder: cache" not in again.err
    clean = fsrun_cli(b, "--model", demo_package, "--raw", "--no-cache",
                      "-o", tmp_path / "b.funscript")
    assert clean.code == 0
    assert _actions(video.with_suffix(".funscript")) == _actions(tmp_path / "b.funscript")


# -- 6. the cache folder removed mid-run --------------------------------------------------------

_start = start_fsrun  # fsrun in a process of its own (slow: batches delayed)


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def _batches_cached(cache: Path) -> int:
    return sum(p.stat().st_size // 12 for p in (cache / "embeddings").glob("*/blocks.crc"))


@pytest.fixture(scope="module")
def clean_actions(clip: Path, demo_package: Path, tmp_path_factory) -> list:
    return clean_actions_of(clip, demo_package, tmp_path_factory.mktemp("clean"))


def test_the_cache_folder_removed_mid_run_costs_nothing(tmp_path: Path, clip: Path,
                                                        demo_package: Path,
                                                        clean_actions: list) -> None:
    cache = tmp_path / "cache"
    env = {**os.environ, "FSRUN_CACHE_DIR": str(cache), "FSRUN_TEST_ENCODER_DELAY": "0.3"}
    run = _start([clip, "--model", demo_package, "-o", tmp_path / "a.funscript"], env)
    _wait_for(lambda: cache.is_dir() and _batches_cached(cache) >= 2)
    shutil.rmtree(cache)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert "going on without it" in err and "Traceback" not in err
    assert _actions(tmp_path / "a.funscript") == clean_actions


def test_one_writer_per_entry_even_when_the_folder_is_replaced(tmp_path: Path, clip: Path,
                                                               demo_package: Path,
                                                               clean_actions: list) -> None:
    """A writes, B waits for A; the cache is removed and C starts: A goes on in memory, B and
    C share the new entry one after the other. All three scripts are the clean one."""
    cache = tmp_path / "cache"
    env = {**os.environ, "FSRUN_CACHE_DIR": str(cache), "FSRUN_TEST_ENCODER_DELAY": "0.2"}
    a = _start([clip, "--model", demo_package, "-o", tmp_path / "a.funscript"], env)
    _wait_for(lambda: cache.is_dir() and _batches_cached(cache) >= 1)
    b = _start([clip, "--model", demo_package, "-o", tmp_path / "b.funscript"], env)
    time.sleep(1.5)  # B is waiting on A's lock by now
    shutil.rmtree(cache)
    c = _start([clip, "--model", demo_package, "-o", tmp_path / "c.funscript"], env)
    for name, run in (("a", a), ("b", b), ("c", c)):
        _, err = run.communicate(timeout=240)
        assert run.returncode == 0, (name, err)
        assert "Traceback" not in err and "invalid funscript" not in err
        assert _actions(tmp_path / f"{name}.funscript") == clean_actions, name
    [entry] = [p for p in (cache / "embeddings").iterdir() if p.is_dir()]
    state = json.loads((entry / "state.json").read_text())
    assert state["complete"] and state["frames"] == 150


# -- 7. long names are refused before the work ------------------------------------------------

def test_a_name_too_long_for_its_temp_file_is_refused_up_front(tmp_path: Path, clip: Path,
                                                               demo_package: Path,
                                                               fsrun_cli) -> None:
    name = "n" * (240 - len(".funscript")) + ".funscript"  # 240 bytes: fits, its temp does not
    result = fsrun_cli(clip, "--model", demo_package, "--no-cache", "-o", tmp_path / name)
    assert result.code == OutputError.exit_code
    assert "the name is too long for its folder" in result.last_line
    assert name in result.last_line
    assert "model:" not in result.err  # refused before the model ran
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_folder_mode_names_the_video_whose_name_is_too_long(tmp_path: Path,
                                                            demo_package: Path,
                                                            fsrun_cli) -> None:
    library = tmp_path / "lib"
    library.mkdir()
    long_video = badfiles.write_video(library / ("v" * 236 + ".mp4"), count=45)
    badfiles.write_video(library / "short.mp4", count=45)
    result = fsrun_cli(library, "--model", demo_package, "--no-cache")
    assert result.code == 1
    assert "1 ok, 0 skipped, 1 failed" in result.out
    assert long_video.stem[:40] in result.out + result.err
    assert "the name is too long" in result.out + result.err
    leftovers = [p.name for p in library.iterdir() if p.name.startswith(".")]
    assert leftovers == []


# -- 8. non-finite numbers are refused wherever they enter ------------------------------------

@pytest.mark.parametrize("flag,value", [("--start", "nan"), ("--end", "inf"),
                                        ("--start", "1e999"), ("--min-amplitude", "nan"),
                                        ("--rdp", "nan"), ("--stretch", "nan"),
                                        ("--fps", "inf")])
def test_non_finite_options_are_usage_errors(flag: str, value: str, tmp_path: Path, clip: Path,
                                             demo_package: Path, fsrun_cli) -> None:
    result = fsrun_cli(clip, "--model", demo_package, flag, value, "-o", tmp_path / "o.funscript")
    assert result.code == UsageError.exit_code, result.err
    assert not (tmp_path / "o.funscript").exists()


@pytest.mark.parametrize("fps", ["NaN", "Infinity", "1e999", '"30"'])
def test_meta_json_with_a_non_finite_fps_is_exit_4(fps: str, tmp_path: Path, clip: Path,
                                                   package_copy: Path, fsrun_cli) -> None:
    meta = package_copy / "meta.json"
    text = meta.read_text()
    meta.write_text(text.replace('"fps": 30.0', f'"fps": {fps}'))
    assert meta.read_text() != text
    result = fsrun_cli(clip, "--model", package_copy, "-o", tmp_path / "o.funscript")
    assert result.code == ModelError.exit_code, result.err
    assert "Traceback" not in result.err and "ValueError" not in result.err


def test_the_run_options_refuse_non_finite_values_in_python() -> None:
    from fsrun.run.postprocess import PostprocessOptions
    from fsrun.run.sampling import TimeRange

    for bad in (float("nan"), float("inf")):
        with pytest.raises(UsageError):
            TimeRange(bad, None)
        with pytest.raises(UsageError):
            TimeRange(0.0, bad)
        with pytest.raises(UsageError):
            PostprocessOptions(min_amplitude=bad)
        with pytest.raises(UsageError):
            PostprocessOptions(offset_ms=bad)


# -- 9. signals, waiters and leftovers ----------------------------------------------------------

def test_a_run_waiting_for_an_import_says_so_and_stops_on_one_ctrl_c(tmp_path: Path,
                                                                     clip: Path) -> None:
    from fsrun.files.fingerprint import sha256_files

    model = edgefiles.tiny_onnx(tmp_path / "m.onnx", ["B", 60])
    cache = tmp_path / "cache"
    locks = cache / "packages" / "locks"
    locks.mkdir(parents=True)
    target = f"m-{sha256_files([model])[:16]}-30fps.fsmodel"
    holder = subprocess.Popen(  # another process importing the same file: it holds the lock
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'w'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
         str(locks / f"{target}.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        env = {**os.environ, "FSRUN_CACHE_DIR": str(cache)}
        waiter = _start([clip, "--model", model, "-o", tmp_path / "o.funscript"], env,
                        slow=False)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(waiter.stderr), daemon=True)
        reader.start()
        _wait_for(lambda: any("another fsrun is cutting m.onnx" in line for line in lines))
        waiter.send_signal(signal.SIGINT)  # one Ctrl-C
        waiter.wait(timeout=30)
        reader.join(timeout=5)
        assert waiter.returncode == Interrupted.exit_code, "".join(lines)
        assert "fsrun: error: stopped by SIGINT" in "".join(lines)
        assert not (tmp_path / "o.funscript").exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_import_leaves_nothing_the_next_one_keeps(tmp_path: Path, clip: Path,
                                                          fsrun_cli) -> None:
    from fsrun.files.fingerprint import sha256_files

    model = edgefiles.tiny_onnx(tmp_path / "m.onnx", ["B", 60])
    packages = Path(os.environ["FSRUN_CACHE_DIR"]) / "packages"
    target = f"m-{sha256_files([model])[:16]}-30fps.fsmodel"
    leftover = packages / f".{target}.k1ll3d"  # what kill -9 left mid-import
    leftover.mkdir(parents=True)
    (leftover / "encoder.onnx").write_bytes(b"half a graph")
    result = fsrun_cli(clip, "--model", model, "-o", tmp_path / "o.funscript")
    assert result.code == 0, result.err
    assert sorted(p.name for p in packages.iterdir()) == ["locks", target]


def test_an_interrupted_model_load_is_exit_130(tmp_path: Path, clip: Path, package_copy: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A second Ctrl-C lands while ONNX Runtime loads a graph: a stop, never 'cannot load'."""
    import onnxruntime

    from fsrun.cli import main

    real = onnxruntime.InferenceSession

    def interrupted(*args, **kwargs):
        raise Interrupted("stopped by SIGINT (second signal)")

    monkeypatch.setattr(onnxruntime, "InferenceSession", interrupted)
    try:
        code = main([str(clip), "--model", str(package_copy), "-o",
                     str(tmp_path / "o.funscript")])
    finally:
        monkeypatch.setattr(onnxruntime, "InferenceSession", real)
    assert code == Interrupted.exit_code


def test_a_report_that_cannot_be_written_says_the_script_was(tmp_path: Path, clip: Path,
                                                             demo_package: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             fsrun_cli) -> None:
    import fsrun.run.session

    def full(path, report):
        raise OutputError(f"{path}: cannot write the report (No space left on device)")

    monkeypatch.setattr(fsrun.run.session, "write_report", full)
    result = fsrun_cli(clip, "--model", demo_package, "--no-cache", "-o",
                       tmp_path / "o.funscript", "--report", tmp_path / "r.json")
    assert result.code == OutputError.exit_code
    assert result.last_line.endswith(f"; {tmp_path / 'o.funscript'} was written")
    assert read_funscript(tmp_path / "o.funscript")["actions"]


# -- 11. messages --------------------------------------------------------------------------------

def test_a_missing_onnx_model_is_named_as_such(tmp_path: Path, clip: Path, fsrun_cli) -> None:
    result = fsrun_cli(clip, "--model", tmp_path / "nope.onnx")
    assert result.code == ModelError.exit_code
    assert result.last_line == (f"fsrun: error: {tmp_path / 'nope.onnx'}: no such model (a "
                                "NAME.fsmodel package folder or a .onnx file)")


def test_a_fifo_is_not_a_video_file(tmp_path: Path, demo_package: Path, fsrun_cli) -> None:
    fifo = tmp_path / "stream.mp4"
    os.mkfifo(fifo)
    result = fsrun_cli(fifo, "--model", demo_package, "-o", tmp_path / "o.funscript")
    assert result.code == 3
    assert "not a video file: it is a named pipe (FIFO)" in result.last_line


def test_crops_are_given_on_the_upright_picture(tmp_path: Path, demo_package: Path,
                                                fsrun_cli) -> None:
    """A phone clip stored 64x48 and shown 48x64: crops are in the shown picture's pixels."""
    video = badfiles.rotated(tmp_path, 90)
    wrong = fsrun_cli(video, "--model", demo_package, "--crop", "0,0,64,48", "--no-cache")
    assert wrong.code == UsageError.exit_code
    assert wrong.last_line.endswith("crop 0,0,64,48 does not fit in the 48x64 video")
    top = fsrun_cli(video, "--model", demo_package, "--crop", "0,0,48,32", "--no-cache",
                    "--raw", "-o", tmp_path / "top.funscript")
    assert top.code == 0, top.err
    assert read_funscript(tmp_path / "top.funscript")["metadata"]["options"]["crop_box"] == \
        [32, 0, 32, 48]  # the top half shown is the stored frame's right half
