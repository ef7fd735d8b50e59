"""The GPU kit's own logic, without a GPU: split, receive, reassemble, verify, install, stages."""
from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tools.gpu_kit import device
from tools.gpu_kit.chunks import MANIFEST, KitError, Manifest, MiB, Receiver, plan_chunks, write_kit
from tools.gpu_kit.download import chunk_budget, requirements, tree_bytes
from tools.gpu_kit.stages import REQUIREMENTS, STAGES


def _files(folder: Path, sizes: tuple[int, ...], seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, size in enumerate(sizes):
        path = folder / f"file{number}.whl"
        path.write_bytes(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        paths.append(path)
    return paths


def test_plan_chunks_tiles_the_stream() -> None:
    assert plan_chunks(10, 4) == [(0, 4), (4, 4), (8, 2)]
    assert plan_chunks(8, 4) == [(0, 4), (4, 4)]
    assert plan_chunks(0, 4) == []
    with pytest.raises(ValueError):
        plan_chunks(10, 0)


def test_split_and_reassemble_round_trip(tmp_path: Path) -> None:
    files = _files(tmp_path / "in", (10_000, 25_000, 7_000))
    manifest = write_kit(files, tmp_path / "kit", 8_192, {"python_version": "3.12"})
    assert len(manifest.chunks) == 6  # 42,000 bytes in parts of 8,192
    folders = sorted((tmp_path / "kit").glob("chunk-*"))
    assert [f.name for f in folders] == [f"chunk-{i:02d}" for i in range(1, 7)]
    for folder in folders:  # each folder alone: one part and the whole plan
        assert sorted(p.name for p in folder.iterdir()) == [MANIFEST, f"part-{folder.name[6:]}.bin"]
        assert Manifest.read(folder / MANIFEST).kit_id == manifest.kit_id
    assert manifest.chunks_of(manifest.files[1]) == manifest.chunks[1:5]

    receiver = Receiver(tmp_path / "state")
    for folder in reversed(folders):  # any order
        receiver.receive(folder)
    assert receiver.present() == [1, 2, 3, 4, 5, 6] and receiver.missing() == []
    rebuilt = receiver.assemble()
    assert [p.read_bytes() for p in rebuilt] == [f.read_bytes() for f in files]
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in rebuilt] == [
        f.sha256 for f in manifest.files]


def test_a_wheel_is_ready_as_soon_as_its_own_chunks_arrived(tmp_path: Path) -> None:
    files = _files(tmp_path / "in", (10_000, 25_000, 7_000))
    write_kit(files, tmp_path / "kit", 8_192)
    receiver = Receiver(tmp_path / "state")
    for index in (1, 2):  # file0 is bytes 0..9,999: chunks 1 and 2
        receiver.receive(tmp_path / "kit" / f"chunk-{index:02d}")
    assert [f.name for f in receiver.ready()] == ["file0.whl"]
    assert [p.name for p in receiver.assemble()] == ["file0.whl"]
    assert receiver.missing() == [3, 4, 5, 6]
    receiver.receive(tmp_path / "kit" / "chunk-02")  # the same chunk again: a no-op
    assert receiver.present() == [1, 2]


def test_a_corrupted_chunk_is_rejected_and_not_kept(tmp_path: Path) -> None:
    write_kit(_files(tmp_path / "in", (20_000,)), tmp_path / "kit", 8_192)
    part = tmp_path / "kit" / "chunk-02" / "part-02.bin"
    data = bytearray(part.read_bytes())
    data[100] ^= 0xFF
    part.write_bytes(bytes(data))
    receiver = Receiver(tmp_path / "state")
    receiver.receive(tmp_path / "kit" / "chunk-01")
    with pytest.raises(KitError, match="chunk 2.*sha256 mismatch"):
        receiver.receive(tmp_path / "kit" / "chunk-02")
    assert receiver.missing() == [2, 3]
    assert not list((tmp_path / "state" / "parts").glob(".*tmp"))


def test_a_part_damaged_after_arrival_fails_reassembly_and_is_dropped(tmp_path: Path) -> None:
    files = _files(tmp_path / "in", (20_000,))
    write_kit(files, tmp_path / "kit", 8_192)
    receiver = Receiver(tmp_path / "state")
    for folder in sorted((tmp_path / "kit").glob("chunk-*")):
        receiver.receive(folder)
    kept = tmp_path / "state" / "parts" / "part-03.bin"
    kept.write_bytes(b"\0" * kept.stat().st_size)  # same size, other bytes
    with pytest.raises(KitError, match="file0.whl: sha256 mismatch"):
        receiver.assemble()
    assert receiver.missing() == [1, 2, 3]  # every part of that file must be carried again
    assert not (tmp_path / "state" / "wheels" / "file0.whl").exists()


def test_a_new_kit_replaces_the_state_of_the_old_one(tmp_path: Path) -> None:
    write_kit(_files(tmp_path / "a", (9_000,), seed=1), tmp_path / "kit_a", 8_192)
    write_kit(_files(tmp_path / "b", (9_000,), seed=2), tmp_path / "kit_b", 8_192)
    receiver = Receiver(tmp_path / "state")
    receiver.receive(tmp_path / "kit_a" / "chunk-01")
    receiver.receive(tmp_path / "kit_b" / "chunk-02")
    assert receiver.present() == [2]  # kit a's part did not survive
    assert receiver.manifest.kit_id == Manifest.read(tmp_path / "kit_b" / MANIFEST).kit_id


def test_a_manifest_with_a_gap_is_refused(tmp_path: Path) -> None:
    manifest = write_kit(_files(tmp_path / "in", (9_000,)), tmp_path / "kit", 4_096)
    data = json.loads(manifest.to_json())
    data["chunks"][1]["offset"] += 1
    with pytest.raises(KitError, match="chunk 2 is out of place"):
        Manifest.from_json(json.dumps(data))


def test_chunk_budget_leaves_room_for_the_tree() -> None:
    assert chunk_budget(int(14.4 * MiB)) == 47 * MiB  # 64 - 14.4 - 2 headroom, whole MiB
    assert chunk_budget(1 * MiB) == 55 * MiB  # capped
    with pytest.raises(ValueError, match="leaves no room"):
        chunk_budget(62 * MiB)  # 64 - 62 - 2 headroom: nothing left


def test_tree_bytes_counts_what_travels(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("/ignored/\n")
    (tmp_path / "tracked.txt").write_bytes(b"x" * 1000)
    subprocess.run(["git", "-C", str(tmp_path), "add", "tracked.txt", ".gitignore"], check=True)
    (tmp_path / "untracked.txt").write_bytes(b"y" * 500)
    (tmp_path / "ignored").mkdir()
    (tmp_path / "ignored" / "big.bin").write_bytes(b"z" * 100_000)
    assert tree_bytes(tmp_path) == 1000 + 500 + len("/ignored/\n")


def _wheel(folder: Path, name: str = "kitdemo", requires: tuple[str, ...] = ()) -> Path:
    """A minimal valid pure-Python wheel."""
    files = {f"{name}/__init__.py": b"VALUE = 42\n",
             f"{name}-1.0.dist-info/METADATA": (
                 f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"
                 + "".join(f"Requires-Dist: {r}\n" for r in requires)).encode(),
             f"{name}-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\n"
                                            b"Root-Is-Purelib: true\nTag: py3-none-any\n"}
    def digest(data: bytes) -> str:
        return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

    record = "".join(f"{path},sha256={digest(data)},{len(data)}\n"
                     for path, data in files.items()) + f"{name}-1.0.dist-info/RECORD,,\n"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
        archive.writestr(f"{name}-1.0.dist-info/RECORD", record)
    return path


def test_requirements_apply_the_needed_extras(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path, requires=("numpy>=1.21", 'sympy; extra == "symbolic"',
                                       'nvidia-cuda-runtime~=13.0; extra == "cuda"',
                                       'tomli; python_version < "3.11"'))
    assert requirements(wheel, (), "3.12") == ["numpy>=1.21"]
    assert requirements(wheel, ("cuda",), "3.12") == ["numpy>=1.21", "nvidia-cuda-runtime~=13.0"]
    assert "tomli" in requirements(wheel, (), "3.10")


def test_install_kit_pip_installs_verified_wheels_once(tmp_path: Path) -> None:
    write_kit([_wheel(tmp_path / "dl")], tmp_path / "kit", 1_000)
    state, lines = tmp_path / "state", []
    receiver = Receiver(state)
    for folder in sorted((tmp_path / "kit").glob("chunk-*")):
        receiver.receive(folder)
    assert device.install_kit(receiver, state, lines.append) == ["kitdemo-1.0-py3-none-any.whl"]
    assert (state / "site" / "kitdemo" / "__init__.py").read_text() == "VALUE = 42\n"
    assert any("--no-index --no-deps" in line and "--target" in line for line in lines)
    lines.clear()
    device.install_kit(receiver, state, lines.append)  # a repeated call installs nothing
    assert not any("pip" in line for line in lines)


def test_stage_table_and_arguments() -> None:
    assert set(STAGES) == {"probe", "packages", "clips", "nvdec", "network"}
    from tools.gpu_kit.plan import CALLS  # noqa: PLC0415 - every stage of the plan exists
    assert {stage for call in CALLS for stage in call.stages} <= set(STAGES)
    for stage in STAGES.values():
        assert callable(stage.run) and stage.about
        assert set(stage.needs + stage.gpu_needs) <= set(REQUIREMENTS)
    args = device.parse_args(["--chunk", "c1", "--chunk", "c2", "probe", "nvdec"], list(STAGES))
    assert args.stages == ["probe", "nvdec"] and [str(c) for c in args.chunk] == ["c1", "c2"]
    with pytest.raises(SystemExit):
        device.parse_args(["bogus"], list(STAGES))


def test_stage_environment_puts_the_tree_first(tmp_path: Path) -> None:
    env = device.stage_env(tmp_path, Path("/repo"))
    paths = env["PYTHONPATH"].split(":")
    assert paths[:5] == ["/repo/runtime/src", "/repo/export/src", "/repo",
                         str(tmp_path / "site"), str(tmp_path / "project")]
    assert env["FSRUN_CACHE_DIR"].startswith(str(tmp_path))


def test_device_call_receives_and_bundles_results(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "dl")
    write_kit([wheel], tmp_path / "kit", wheel.stat().st_size // 2 + 1)
    chunks = sorted((tmp_path / "kit").glob("chunk-*"))
    argv = ["--state", str(tmp_path / "state"), "--out", str(tmp_path / "out")]
    assert device.main(argv + [a for c in chunks[:1] for a in ("--chunk", str(c))]) == 0
    status = json.loads((tmp_path / "out" / "receive-status.json").read_text())
    assert status["present"] == [1] and status["missing"] == [2] and status["installed"] == []
    assert device.main(argv + ["--chunk", str(chunks[1])]) == 0
    status = json.loads((tmp_path / "out" / "receive-status.json").read_text())
    assert status["missing"] == [] and status["installed"] == ["kitdemo-1.0-py3-none-any.whl"]
    assert (tmp_path / "out" / "receive-results.tar.gz").stat().st_size > 0
    assert "chunk 2 verified" in (tmp_path / "out" / "receive.log").read_text()


# ---- benchmark paths the GPU run relies on, exercised without a GPU ----

def test_e2e_keeps_measuring_when_one_decoder_fails(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    from benchmarks import runner

    def fake_probe(args: dict) -> dict:
        if args["decoder"] == "nvdec":
            raise RuntimeError("probe fsrun failed (3): NVDEC could not start")
        report = {"frames": 60, "wall": 0.5, "load": 0.1, "decoder": args["decoder"],
                  "resize": "graph"}
        return {"report": report, "wall_s": 0.5, "cpu_user_s": 0.4, "cpu_system_s": 0.1,
                "cpu_cores_busy": 1.0, "peak_rss_mib": 100.0}

    monkeypatch.setattr(runner, "run_probe", fake_probe)
    cfg = runner.BenchConfig(packages=[], out=tmp_path, clips_dir=tmp_path, strides=(60, 30),
                             baseline_variants=())
    errors: list[str] = []
    rows = runner.run_e2e(cfg, tmp_path / "p.fsmodel", "effv2s", "cuda", tmp_path / "v.mp4",
                          lambda line: None, errors)
    assert [(r["decoder"], r["stride"]) for r in rows] == [("pyav", 60), ("pyav", 30)]
    assert len(errors) == 2 and all("nvdec" in e and "NVDEC could not start" in e
                                    for e in errors)


def test_append_keeps_torch_eager_rows_of_other_variants(tmp_path: Path) -> None:
    from benchmarks import runner

    previous = {"schema": runner.SCHEMA_VERSION, "backends": ["cuda"], "clips": {},
                "system": {"libraries": {}, "command": "x"},
                "torch_eager": [{"variant": "tiny", "fps": 1.0},
                                {"variant": "effv2s", "fps": 2.0}]}
    (tmp_path / "results.json").write_text(json.dumps(previous))
    fresh = {"backends": ["cuda"], "system": {"libraries": {"a": "1"}, "command": "y"}}
    merged = runner._previous(tmp_path / "results.json", fresh, {"effv2s"})
    assert merged["torch_eager"] == [{"variant": "tiny", "fps": 1.0}]


def test_diff_stats_measure_what_differs() -> None:
    from benchmarks.nvdec import DiffStats

    reference = np.full((2, 4, 4, 3), 100, np.uint8)
    candidate = reference.copy()
    candidate[0, 0, 0] = (110, 100, 97)  # one pixel: R +10, B -3
    stats = DiffStats()
    stats.add(reference, candidate)
    summary = stats.summary()
    assert summary["frames"] == 2 and summary["values"] == 96
    assert summary["max"] == 10 and summary["p50"] == 0
    assert summary["mean_abs"] == pytest.approx(13 / 96)
    assert summary["mean_signed_rgb"] == pytest.approx([10 / 32, 0.0, -3 / 32])
    assert summary["share_over"]["5"] == pytest.approx(1 / 96)
    with pytest.raises(ValueError):
        stats.add(reference, candidate[:, :2])


def test_compare_sources_on_one_decoder_agrees_with_itself(tmp_path: Path) -> None:
    from benchmarks.nvdec import compare_sources
    from benchmarks.videos import ClipParams, make_clip
    from fsrun.sources.pyav_source import PyAvSource

    clip = make_clip(ClipParams(width=64, height=48, seconds=1, codec="libx265"), tmp_path)
    result = compare_sources(clip, PyAvSource, PyAvSource, batch=7)
    assert result["frames_reference"] == result["frames_candidate"] == 30
    assert result["timestamps_identical"] and result["max_timestamp_diff_ms"] == 0.0
    assert result["pixels"]["frames"] == 30 and result["pixels"]["max"] == 0


@pytest.mark.slow
def test_rehearsal_of_every_stage(tmp_path: Path) -> None:
    """The runbook's stages end to end without a GPU (about a minute on two cores)."""
    base = ["--rehearsal", "--state", str(tmp_path / "state"), "--variants", "tiny"]
    assert device.main(base + ["--out", str(tmp_path / "1"), "probe", "packages"]) == 0
    assert device.main(base + ["--out", str(tmp_path / "2"), "nvdec"]) == 0
    assert device.main(base + ["--out", str(tmp_path / "3"), "network"]) == 0
    status = json.loads((tmp_path / "3" / "network-status.json").read_text())
    assert status["stages"]["network"]["rc"] == 0
    with tarfile.open(tmp_path / "3" / "network-results.tar.gz") as tar:
        names = tar.getnames()
    for name in ("probe.json", "nvdec.json", "nvdec.md", "results.json", "report.md",
                 "pytest-needs-cuda.xml"):
        assert any(n.endswith("/" + name) for n in names), name


def test_smi_sampler_reads_memory_and_decoder_use(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    from benchmarks.devices import SmiSampler

    fake = tmp_path / "nvidia-smi"  # answers the one query the sampler asks
    fake.write_text("#!/bin/sh\necho '1234, 56'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    with SmiSampler(interval_s=0.01) as sampler:
        while len(sampler.samples) < 2:
            pass
    assert sampler.peaks() == {"device_used_peak_mib": 1234.0, "decoder_util_peak_pct": 56.0}
