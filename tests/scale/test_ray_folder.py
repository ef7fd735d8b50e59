"""`fsrun DIR --ray` on a local Ray (num_cpus=2): same scripts as folder mode, retries after a
killed worker, nothing half-written, idempotent re-runs, Ray only behind --ray."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fsrun.files.claims import claim_path
from fsrun.config import demo_model_dir
from fsrun.model.package import load_package
from fsrun.run.axis_outputs import axis_output
from fsrun.folder import process_folder
from fsrun.files.funscript import read_funscript
from tests.split_options import split
from fsrun.errors import UsageError
from fsrun.scale.cluster import Node, plan_slots, root_cause
from fsrun.scale.ray_folder import process_ray_folder

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from videos import write_cfr  # noqa: E402

CLIPS = {"a.mp4": 70, "b.mp4": 95, "sub/c.mkv": 120}  # frames: each needs 2+ encoder batches


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module (its start-up costs seconds); process_ray_folder reuses it."""
    import ray  # noqa: PLC0415

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _library(root: Path) -> Path:
    for name, frames in CLIPS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        write_cfr(root / name, 30, frames)
    return root


def _template(**changes) -> tuple:
    """(spec, request, hooks) of a folder run; the request's video is the folder (not read)."""
    return split(**{"video": Path("."), "model": demo_model_dir(), "quiet": True,
                    "use_cache": False, **changes})


def _scripts(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.funscript"))}


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith((".tmp", ".claim", ".takeover"))]


def test_same_scripts_as_folder_mode_then_everything_skipped(tmp_path: Path, local_ray) -> None:
    library = _library(tmp_path / "lib")
    single = process_folder(library, *_template(report=tmp_path / "single.json"),
                            output_dir=tmp_path / "single")
    assert single.count("ok") == 3
    run = process_ray_folder(library, *_template(report=tmp_path / "ray.json"), ["mp4", "mkv"],
                             output_dir=tmp_path / "ray")
    assert run.summary.count("ok") == 3 and run.actors == 1 and run.startup_s > 0
    assert run.actor_options == {"num_cpus": 2} and run.nodes == 1
    expected = _scripts(tmp_path / "single")
    axes = load_package(demo_model_dir()).meta.axis_names  # a file per axis
    assert sorted(expected) == sorted(axis_output(Path(f"{stem}.funscript"), axis).as_posix()
                                      for stem in ("a", "b", "sub/c") for axis in axes)
    assert _scripts(tmp_path / "ray") == expected  # byte for byte (no timestamps in metadata)
    mine = json.loads((tmp_path / "ray.json").read_text())
    theirs = json.loads((tmp_path / "single.json").read_text())
    assert mine.keys() == theirs.keys() and mine["counts"] == theirs["counts"]
    assert [(Path(f["video"]).name, f["status"]) for f in mine["files"]] == \
           [(Path(f["video"]).name, f["status"]) for f in theirs["files"]]
    assert mine["files"][0].keys() == theirs["files"][0].keys()
    # The same plan, but the actor runs as many threads as CPUs it reserved (2), not "auto".
    assert mine["plan"]["threads"] == 2 and theirs["plan"]["threads"] == 0
    assert {**mine["plan"], "threads": 0} == theirs["plan"] and theirs["plan"]["backend"] == "cpu"
    assert mine["files"][2]["report"]["frames"] == theirs["files"][2]["report"]["frames"] == 120

    again = process_ray_folder(library, *_template(), ["mp4", "mkv"], output_dir=tmp_path / "ray")
    assert again.summary.count("skipped") == 3 and again.actors == 0  # no worker started
    assert {o.detail.split(" (")[1] for o in again.summary.outcomes} == {
        "same model and options)"}
    assert _scripts(tmp_path / "ray") == expected


def test_killed_worker_is_retried_elsewhere_and_nothing_is_half_written(
        tmp_path: Path, local_ray, monkeypatch: pytest.MonkeyPatch) -> None:
    library = _library(tmp_path / "lib")
    process_folder(library, *_template(), output_dir=tmp_path / "single")
    marker = tmp_path / "kill-one-worker"
    marker.touch()
    from tests.scale import faults

    local_ray.cloudpickle.register_pickle_by_value(faults)  # workers need not import tests
    lines: list[str] = []
    # With the embedding cache on: the retry resumes from what the dead worker cached.
    run = process_ray_folder(library, *_template(use_cache=True, cache_dir=tmp_path / "cache",
                                                 backend_factory=faults.DiesMidVideo(marker)),
                             ["mp4", "mkv"], log=lines.append, actor_cpus=1)
    assert not marker.exists() and marker.with_name(marker.name + ".fired").exists()
    assert run.actors == 2 and run.retried == 1
    assert any("retrying" in line and " died (" in line for line in lines), lines
    assert run.summary.count("ok") == 3, [o.detail for o in run.summary.outcomes]
    got = {str(p.relative_to(library)): p.read_bytes() for p in library.rglob("*.funscript")}
    assert got == _scripts(tmp_path / "single")
    assert _leftovers(library) == []


def test_leftovers_of_a_dead_driver_are_taken_over(tmp_path: Path, local_ray) -> None:
    library = _library(tmp_path / "lib")
    output = library / "b.funscript"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    claim_path(output).write_text(json.dumps({"pid": int(dead.stdout), "host": os.uname()[1],
                                              "started": time.time()}))
    stale_tmp = output.with_name(f".{output.name}.abc123.tmp")
    stale_tmp.write_text('{"version": "1.0", "act')  # a write cut off by the kill
    os.utime(stale_tmp, (time.time() - 600, time.time() - 600))
    run = process_ray_folder(library, *_template(), ["mp4", "mkv"])
    assert run.summary.count("ok") == 3, [o.detail for o in run.summary.outcomes]
    assert len(read_funscript(output)["actions"]) > 2
    assert _leftovers(library) == []


def _shapes(nodes: list[Node], jobs: int, cpus: int | None = None) -> list[tuple[str, dict]]:
    return [(slot.node.node_id, slot.options) for slot in plan_slots(nodes, jobs, cpus)]


def test_actors_are_sized_from_each_node_not_from_the_totals() -> None:
    one, two = Node("a", "10.0.0.1", 1.0, 0.0), Node("b", "10.0.0.2", 1.0, 0.0)
    # Two 1-CPU nodes hold two 1-CPU actors (the totals, 2 CPUs, fit neither node).
    assert _shapes([one, two], 10) == [("a", {"num_cpus": 1}), ("b", {"num_cpus": 1})]
    big = Node("c", "10.0.0.3", 64.0, 0.0)
    assert _shapes([big], 10) == [("c", {"num_cpus": 4})] * 10
    assert _shapes([big], 3) == [("c", {"num_cpus": 4})] * 3
    assert len(_shapes([big], 100)) == 16
    # A small run still uses every node: places are taken from each node in turn.
    assert [node for node, _ in _shapes([big, Node("d", "10.0.0.4", 8.0, 0.0)], 3)] == \
        ["c", "d", "c"]
    gpus = Node("g", "10.0.0.5", 32.0, 8.0)
    assert _shapes([gpus], 100) == [("g", {"num_gpus": 1, "num_cpus": 4})] * 8
    assert _shapes([Node("h", "10.0.0.6", 8.0, 8.0)], 100) == \
        [("h", {"num_gpus": 1, "num_cpus": 1})] * 8
    assert _shapes([one, two], 10, cpus=1) == _shapes([one, two], 10)


def test_a_cluster_with_no_node_for_one_actor_is_refused_in_one_line() -> None:
    nodes = [Node("a", "10.0.0.1", 1.0, 0.0), Node("b", "10.0.0.2", 1.0, 0.0)]
    with pytest.raises(UsageError) as info:
        plan_slots(nodes, 4, actor_cpus=2)
    assert str(info.value) == ("no Ray node can hold one worker of 2 CPUs (nodes: 10.0.0.1 1 CPU, "
                               "10.0.0.2 1 CPU); pass --ray-cpus 1 or add a node with 2 CPUs")
    with pytest.raises(UsageError, match="no Ray node offers a CPU or GPU"):
        plan_slots([Node("z", "10.0.0.9", 0.0, 0.0)], 4)


def test_root_cause_of_a_worker_error_is_the_exception_raised_on_the_node() -> None:
    text = ("The actor died because of an error raised in its creation task, "
            "ray::FolderWorker.__init__() (pid=1, ip=10.0.0.2)\n  File \"x.py\", line 3\n"
            "ModuleNotFoundError: No module named 'fsrun'")
    assert root_cause(RuntimeError(text)) == "ModuleNotFoundError: No module named 'fsrun'"
    assert root_cause(RuntimeError("plain\nsecond")) == "plain"


def test_without_ray_flag_nothing_imports_ray(tmp_path: Path) -> None:
    library = tmp_path / "lib"
    library.mkdir()
    write_cfr(library / "a.mp4", 30, 40)
    code = ("import sys\nfrom fsrun.cli import main\n"
            f"code = main([{str(library)!r}, '--model', {str(demo_model_dir())!r}, '-q', "
            "'--no-cache'])\n"
            "print(code, sorted(m for m in sys.modules if m.split('.')[0] == 'ray'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.stdout.split() == ["0", "[]"], done.stdout + done.stderr
    assert (library / "a.funscript").exists()


def test_missing_ray_is_one_line_naming_the_extra(tmp_path: Path, monkeypatch, capsys) -> None:
    from fsrun.cli import main  # noqa: PLC0415

    library = tmp_path / "lib"
    library.mkdir()
    write_cfr(library / "a.mp4", 30, 40)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    code = main([str(library), "--model", str(demo_model_dir()), "--ray", "--no-cache"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 6
    assert err == ["fsrun: error: Ray (for --ray) is not installed; install it with: "
                   "pip install 'fsrun[ray]'"]
    assert not (library / "a.funscript").exists()
