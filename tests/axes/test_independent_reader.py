"""The 1.1 single file and the sibling files read by an independent reader: the npm package
funscript-utils (a Handy tool), where node and npm can install it. It reads the root `actions`
(the stroke), keeps `axes` untouched as an unknown field, and its half-speed tool rewrites
the root actions alone."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fsrun import cli
from fsrun.files.funscript import default_output, read_funscript

READ = """
const fu = require("funscript-utils");
const fs = require("fs");
const out = {};
for (const path of process.argv.slice(2)) {
  const script = fu.FunConverter.getFunscriptFromString(fs.readFileSync(path, "utf8"));
  const half = fu.FunHalver.getHalfSpeedScript(JSON.parse(JSON.stringify(script)), {});
  out[path] = {actions: script.actions.length, duration: script.metadata.duration,
               axes: script.axes || null, halfActions: half.actions.length,
               halfAxes: half.axes || null};
}
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def funscript_utils(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed")
    folder = tmp_path_factory.mktemp("npm")
    try:
        subprocess.run(["npm", "install", "--prefix", str(folder), "--no-audit", "--no-fund",
                        "funscript-utils@1.1.3"], check=True, capture_output=True, timeout=120)
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"funscript-utils could not be installed ({exc})")
    return folder


def test_funscript_utils_reads_the_files(funscript_utils: Path, axis_packages, roll_clip: Path,
                                         tmp_path: Path) -> None:
    _, two = axis_packages
    video = Path(shutil.copy(roll_clip, tmp_path / roll_clip.name))
    assert cli.main([str(video), "-m", str(two), "-q"]) == 0
    single = tmp_path / "single.funscript"
    assert cli.main([str(video), "-m", str(two), "-q", "--multi-axis-file", "-o",
                     str(single)]) == 0
    files = [single, default_output(video), default_output(video, "roll")]
    script = tmp_path / "read.js"
    script.write_text(READ)
    done = subprocess.run(["node", str(script), *map(str, files)], capture_output=True,
                          text=True, timeout=60, cwd=funscript_utils,
                          env={"NODE_PATH": str(funscript_utils / "node_modules"),
                               "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    read = json.loads(done.stdout)
    for path in files:
        mine = read_funscript(path)
        theirs = read[str(path)]
        assert theirs["actions"] == len(mine["actions"])
        assert theirs["duration"] == mine["actions"][-1]["at"]
        assert theirs["halfActions"] >= 2
    assert read[str(single)]["axes"] == read_funscript(single)["axes"]  # kept as it was
    assert read[str(single)]["halfAxes"] == read_funscript(single)["axes"]  # not halved
    assert read[str(files[1])]["axes"] is None
