"""`fsrun DIR --ray ADDRESS` on a cluster someone started with `ray start`: two raylets on this
machine, each declaring its own CPUs, as separate nodes. The run gives folder mode's actions and
uses both nodes; nodes too small for one worker are refused in one line, never waited on.

Marked `long` (CI runs it as its own step: the cluster costs about 15 s to start). The cluster is
stopped by the test in every outcome.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fsrun.config import demo_model_dir
from fsrun.files.funscript import read_funscript
from fsrun.model.package import load_package
from tests.runtime.videos import write_cfr

pytestmark = pytest.mark.long
RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """`ray start --head` and `ray start --address` with their own CPUs and temp folders."""

    def __init__(self, root: Path, cpus: tuple[int, int], env: dict[str, str]):
        self.root, self.cpus, self.env = root, cpus, env
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log: list[str] = []

    def _ray(self, *args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([str(RAY), *args], env=self.env, capture_output=True, text=True,
                              timeout=180)
        self.log.append(f"$ ray {' '.join(args)}\n{done.stdout[-1500:]}{done.stderr[-1500:]}")
        return done

    def start(self) -> None:
        head = self._ray("start", "--head", "--port", str(self.port), "--num-cpus",
                         str(self.cpus[0]), "--num-gpus", "0", "--include-dashboard=false",
                         "--disable-usage-stats", "--temp-dir", str(self.root / "head"))
        assert head.returncode == 0, "\n".join(self.log)
        node = self._ray("start", "--address", self.address, "--num-cpus", str(self.cpus[1]),
                         "--num-gpus", "0", "--disable-usage-stats")
        assert node.returncode == 0, "\n".join(self.log)
        deadline = time.monotonic() + 60
        while self.nodes() < 2:
            assert time.monotonic() < deadline, "the second node never joined:\n" + self.status()
            time.sleep(0.5)

    def nodes(self) -> int:
        code = ("import ray, logging; ray.init(address=%r, logging_level=logging.ERROR); "
                "print(len([n for n in ray.nodes() if n['Alive']]))" % self.address)
        done = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True,
                              text=True, timeout=60)
        return int(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else 0

    def status(self) -> str:
        return self._ray("status", "--address", self.address).stdout

    def stop(self) -> None:
        self._ray("stop", "--force")


@pytest.fixture(scope="module")
def cluster_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if not RAY.is_file():
        pytest.skip("the `ray` command is not installed (pip install 'fsrun[ray]')")
    cache = tmp_path_factory.mktemp("cache")
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
            "FSRUN_CACHE_DIR": str(cache)}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, cluster_env: dict):
    """Two nodes of 1 CPU each, for the module; stopped whatever happens."""
    running = Cluster(tmp_path_factory.mktemp("ray"), (1, 1), cluster_env)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        print("\n".join(running.log))  # the closing note quotes `ray status` and the runs


def _library(root: Path) -> Path:
    root.mkdir(parents=True)
    for i, frames in enumerate((70, 95, 80, 110)):
        write_cfr(root / f"clip{i}.mp4", 30, frames)
    return root


def _fsrun(args: list, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fsrun.cli", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)


def _actions(folder: Path) -> dict[str, list]:
    return {p.name: read_funscript(p)["actions"] for p in sorted(folder.glob("*.funscript"))}


def test_two_node_cluster_runs_like_folder_mode(tmp_path: Path, cluster: Cluster,
                                                cluster_env: dict) -> None:
    library = _library(tmp_path / "lib")
    model = ["--model", demo_model_dir(), "--no-cache"]
    single = _fsrun([library, *model, "--output-dir", tmp_path / "single"], cluster_env)
    assert single.returncode == 0, single.stderr
    run = _fsrun([library, *model, "--ray", cluster.address, "--output-dir",
                  tmp_path / "ray-out", "--report", tmp_path / "r.json"], cluster_env)
    cluster.log.append(f"$ fsrun LIB --ray {cluster.address} ...\n{run.stderr}{run.stdout}")
    cluster.log.append(f"$ ray status\n{cluster.status()}")
    assert run.returncode == 0, run.stderr
    assert "ray: 2 workers on 2 nodes (1 CPU each) ready in" in run.stderr
    assert _actions(tmp_path / "ray-out") == _actions(tmp_path / "single")
    axes = load_package(demo_model_dir()).meta.axis_names
    assert len(_actions(tmp_path / "single")) == 4 * len(axes)  # a file per video and axis
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["counts"]["ok"] == 4
    nodes = {f["report"]["node"] for f in report["files"]}
    assert len(nodes) == 2, nodes  # both nodes ran videos


def test_nodes_too_small_for_one_worker_are_refused_at_once(tmp_path: Path, cluster: Cluster,
                                                            cluster_env: dict) -> None:
    library = _library(tmp_path / "lib")
    began = time.monotonic()
    run = _fsrun([library, "--model", demo_model_dir(), "--no-cache", "--ray", cluster.address,
                  "--ray-cpus", "2", "--ray-timeout", "60"], cluster_env, timeout=120)
    cluster.log.append(f"$ fsrun LIB --ray {cluster.address} --ray-cpus 2 ...\n{run.stderr}")
    assert run.returncode == 2, run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"fsrun: error: no Ray node can hold one worker of 2 CPUs \(nodes: "
                        r"\S+ 1 CPU, \S+ 1 CPU\); pass --ray-cpus 1 or add a node with 2 CPUs",
                        last), last
    assert time.monotonic() - began < 60
    assert not [p for p in library.rglob("*") if p.name.endswith((".claim", ".tmp"))]
    assert not list(library.glob("*.funscript"))


HOLD_CPUS = """
import logging, sys, time, ray
ray.init(address=sys.argv[1], logging_level=logging.ERROR)

@ray.remote(num_cpus=1)
class Hold:
    def ready(self):
        return True

holders = [Hold.remote() for _ in range(int(sys.argv[2]))]
ray.get([h.ready.remote() for h in holders])
print("holding", flush=True)
time.sleep(120)
"""


def test_workers_that_cannot_start_are_not_waited_on_in_silence(tmp_path: Path, cluster: Cluster,
                                                                cluster_env: dict) -> None:
    """Another job holds every CPU: fsrun says what it waits for, then gives up in one line."""
    library = _library(tmp_path / "lib")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_CPUS, cluster.address, "2"],
                              env=cluster_env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        began = time.monotonic()
        run = _fsrun([library, "--model", demo_model_dir(), "--no-cache", "--ray",
                      cluster.address, "--ray-timeout", "12"], cluster_env, timeout=120)
        waited = time.monotonic() - began
        cluster.log.append(f"$ fsrun LIB --ray {cluster.address} --ray-timeout 12 (CPUs held)\n"
                           f"{run.stderr}")
    finally:
        holder.kill()
        holder.wait()
    assert run.returncode == 1, run.stderr
    assert "fsrun: ray: waiting for 2 of 2 workers to start (pending: " in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("fsrun: error: ray: 2 of 2 workers did not start within 12 s "
                           "(pending: "), last
    assert "CPU 0/2 free" in last
    assert waited < 60
    assert not [p for p in library.rglob("*") if p.name.endswith((".claim", ".tmp"))]
