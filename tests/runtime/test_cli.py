"""The fsrun command line: default command, exit codes, one-line errors, subcommands."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fsrun import cli
from fsrun.files.funscript import read_funscript

from .videos import write_cfr


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cfr(tmp_path_factory.mktemp("cli") / "clip.mp4", 30, 75)


def fsrun(*args: str) -> int:
    return cli.main([str(a) for a in args])


def test_video_argument_runs_and_writes_next_to_it(video: Path, demo_package: Path,
                                                   tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    copy = tmp_path / "clip.mp4"
    copy.write_bytes(video.read_bytes())
    report = tmp_path / "r.json"
    assert fsrun(copy, "--model", demo_package, "--backend", "cpu", "--report", report) == 0
    doc = read_funscript(tmp_path / "clip.funscript")
    assert doc["actions"]
    err = capsys.readouterr().err
    assert err.count("backend: cpu") == 1 and "decoder: pyav" in err and "wrote" in err
    assert json.loads(report.read_text())["frames"] == 75
    # Exists now: refused with the output exit code, file untouched.
    before = (tmp_path / "clip.funscript").read_bytes()
    assert fsrun(copy, "--model", demo_package, "--quiet") == 5
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "clip.funscript").read_bytes() == before
    assert fsrun(copy, "--model", demo_package, "--force", "--raw", "-q") == 0
    assert capsys.readouterr().err == ""  # --quiet: nothing at all
    assert len(read_funscript(tmp_path / "clip.funscript")["actions"]) == 75


def test_explicit_run_command_and_options(video: Path, demo_package: Path,
                                          tmp_path: Path) -> None:
    out = tmp_path / "o.funscript"
    code = fsrun("run", video, "-m", demo_package, "-o", out, "--start", "0:01", "--end", "2",
                 "--raw", "--invert", "--offset", "5", "--crop", "sbs-left", "-q")
    assert code == 0
    doc = read_funscript(out)
    assert doc["actions"][0]["at"] == 1005 and len(doc["actions"]) == 30
    assert doc["metadata"]["options"]["crop_box"] == [0, 0, 32, 48]


@pytest.mark.parametrize("args, code, fragment", [
    (["{missing}"], 3, "no such video"),
    (["{junk}"], 3, "cannot open"),
    (["{video}", "--crop", "nope"], 2, "--crop"),
    (["{video}", "--stride", "61"], 2, "--stride"),
    (["{video}", "--start", "5", "--end", "2"], 2, "--end"),
    (["{video}", "--start", "60"], 2, "past the end"),
    (["{video}", "--backend", "gpu"], 2, "gpu"),
    (["{video}", "--model", "{missing_model}"], 4, "no such model"),
])
def test_errors_are_one_line_with_their_exit_code(args: list[str], code: int, fragment: str,
                                                  video: Path, demo_package: Path,
                                                  tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "junk.mp4").write_bytes(b"junk" * 50)
    values = {"missing": tmp_path / "none.mp4", "junk": tmp_path / "junk.mp4", "video": video,
              "missing_model": tmp_path / "none.fsmodel"}
    argv = [a.format(**values) for a in args]
    if "--model" not in argv:
        argv += ["--model", str(demo_package)]
    assert fsrun(*argv, "-o", tmp_path / "o.funscript") == code
    err = capsys.readouterr().err.strip()
    assert fragment in err
    if code != 2:  # click prints usage lines for option errors
        assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path: Path, demo_package: Path,
                                   capsys: pytest.CaptureFixture) -> None:
    assert fsrun(tmp_path / "none.mp4", "--model", demo_package, "--debug") == 3
    assert "Traceback" in capsys.readouterr().err


def test_subcommands_are_lazy_and_missing_ones_do_not_break_run(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(cli.LAZY_COMMANDS, "ghost", "fsrun.no_such_module:command")
    group = cli.cli
    monkeypatch.setattr(group, "lazy", dict(cli.LAZY_COMMANDS))
    assert fsrun("ghost") == 1
    assert "not available" in capsys.readouterr().err
    assert fsrun("--help") == 0
    out = capsys.readouterr().out
    assert "run" in out and "demo" in out and "synth" in out
    assert fsrun("--version") == 0
    assert "0.1.0" in capsys.readouterr().out


def test_console_script_entry_point(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "import sys, fsrun.cli; "
                           "sys.exit(fsrun.cli.main())", str(tmp_path / "none.mp4"),
                           "--model", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 4  # the folder is not a model package
    assert done.stderr.startswith("fsrun: error:") and len(done.stderr.splitlines()) == 1


def test_help_shows_the_run_options_and_the_commands(capsys: pytest.CaptureFixture) -> None:
    assert fsrun("--help") == 0
    out = capsys.readouterr().out
    assert "fsrun VIDEO|FOLDER [OPTIONS]" in out
    for option in ("--model", "--output", "--stride", "--crop", "--resize", "--force",
                   "--report", "--cache-dir", "--offset", "--quiet", "--version"):
        assert option in out, option
    commands = out[out.index("Commands:"):]
    assert "demo" in commands and "synth" in commands
    assert "./NAME" in out  # how to name a path that is also a command


@pytest.mark.parametrize("name", ["demo", "synth"])
def test_a_path_named_like_a_command_is_ambiguous(name: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).mkdir()
    assert fsrun(name) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"fsrun: error: '{name}' is both the `fsrun {name}` command and ./{name} "
                   f"here: write `fsrun ./{name}` (or `fsrun run {name}`) for the path, "
                   f"`fsrun {name} --` for the command")
    assert fsrun(name, "--help", "--") == 0  # the command, said so
    assert f"Usage: fsrun {name}" in capsys.readouterr().out
    (tmp_path / name).rmdir()
    assert fsrun(name, "--help") == 0  # no such path: no doubt
    assert f"Usage: fsrun {name}" in capsys.readouterr().out
