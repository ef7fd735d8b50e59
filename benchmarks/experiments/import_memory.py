"""Peak memory and time of the two ONNX doors on a model of the author's architecture.

The model is model-notes.md's: an EfficientNetV2 backbone on each frame (timm, random weights
with calibrated BatchNorm statistics), its features flattened, Dense(256, relu), two
bidirectional LSTM(128), Dense(60, relu); one graph taking float32 [B, 60, S, S, 3] in 0..255,
exported from PyTorch (the same contract as the author's tf2onnx file). At 384 px with
EfficientNetV2-S it is about 272 MB, most of it the Dense over 12 x 12 x 1280 features.

Each door runs in a fresh process, timed and measured by the kernel (peak resident memory of
that process, `wait4`): `fsrun CLIP --model M.onnx` with an empty cache (it cuts and checks the
model, then scripts a 2 s clip) and `fsexport import M.onnx`. `--pythonpath` puts another
checkout's `runtime/src` first, to measure the code as it was (the before column).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

WINDOW = 60
FSRUN = "fsrun.cli"
FSEXPORT = "fsexport.cli"


@dataclass(frozen=True)
class ImportMemoryConfig:
    work: Path  # scratch folder: the models (kept between runs), the clip, the caches
    sizes: tuple[int, ...] = (64, 384)  # input sizes S of the models measured
    backbone: str = "tf_efficientnetv2_s"  # timm backbone of the author's model
    pythonpath: str | None = None  # a runtime/src to measure instead of the installed fsrun
    label: str = "after"  # the column this run fills (before, after)


@dataclass
class DoorRun:
    door: str  # "fsrun --model" or "fsexport import"
    size: int  # model input size S
    model_mb: float  # the .onnx file's size
    exit_code: int  # the process's exit status
    wall_s: float  # seconds the process ran
    peak_mb: float  # its peak resident memory (kernel's ru_maxrss)
    error: str = ""  # last stderr line when it failed


@dataclass
class ImportMemoryResult:
    config: dict  # the ImportMemoryConfig that ran
    runs: list[DoorRun] = field(default_factory=list)  # one per door and size


def author_model(path: Path, size: int, backbone: str) -> Path:
    """Write the author-architecture ONNX at `size` (once: an existing file is reused)."""
    if path.is_file():
        return path
    import torch  # noqa: PLC0415 - the export side, only when a model has to be made
    from torch import nn  # noqa: PLC0415

    from fsexport.model import FrameEncoder, SequenceHead, calibrate_batchnorm, create_backbone  # noqa: PLC0415
    from fsexport.variants import Variant  # noqa: PLC0415

    torch.manual_seed(0)
    variant = Variant(name="author", backbone=backbone, input_size=size)
    net, mean, std = create_backbone(variant)
    encoder = FrameEncoder(net, variant, mean, std)
    calibrate_batchnorm(encoder)
    head = SequenceHead(variant)

    class AuthorGraph(nn.Module):
        """float32 [B, T, S, S, 3] in 0..255 -> [B, T], normalization inside (no resize)."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder, self.head = encoder, head

        def forward(self, frames: torch.Tensor) -> torch.Tensor:
            b, t = frames.shape[0], frames.shape[1]
            x = frames.flatten(0, 1).permute(0, 3, 1, 2)
            x = x * self.encoder.scale + self.encoder.shift
            maps = self.encoder.backbone.forward_features(x)
            flat = maps.permute(0, 2, 3, 1).flatten(1)
            return self.head(self.encoder.embed_features(flat).reshape(b, t, -1))

    module = AuthorGraph().eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    with torch.no_grad():
        torch.onnx.export(module, (torch.rand(1, WINDOW, size, size, 3) * 255,), str(part),
                          input_names=["frames"], output_names=["positions"],
                          dynamic_axes={"frames": {0: "B"}, "positions": {0: "B"}},
                          opset_version=17, dynamo=False, do_constant_folding=True)
    os.replace(part, path)
    return path


def measure_process(argv: list[str], env: dict[str, str]) -> tuple[int, float, float, str]:
    """(exit code, wall s, peak resident MB, last stderr line) of one child process."""
    began = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = child.stderr.read().decode("utf-8", "replace") if child.stderr else ""
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - began
    lines = stderr.strip().splitlines()
    return child.returncode, wall, usage.ru_maxrss / 1024.0, lines[-1] if lines else ""


def _clip(work: Path) -> Path:
    clips = work / "clip"
    found = sorted(clips.glob("*.mp4")) if clips.is_dir() else []
    if found:
        return found[0]
    subprocess.run([sys.executable, "-m", FSRUN, "synth", str(clips), "--count", "1",
                    "--seconds", "2", "--size", "96x72"], check=True, capture_output=True)
    return sorted(clips.glob("*.mp4"))[0]


def measure(config: ImportMemoryConfig, log: Callable[[str], None]) -> ImportMemoryResult:
    result = ImportMemoryResult(config={k: str(v) if isinstance(v, Path) else v
                                        for k, v in asdict(config).items()})
    work = Path(config.work)
    clip = _clip(work)
    env = dict(os.environ)
    if config.pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [config.pythonpath,
                                                          env.get("PYTHONPATH")]))
    for size in config.sizes:
        model = author_model(work / f"author_{size}" / "model.onnx", size, config.backbone)
        model_mb = model.stat().st_size / 2**20
        for door in ("fsrun --model", "fsexport import"):
            scratch = work / "scratch"
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(parents=True)
            run_env = {**env, "FSRUN_CACHE_DIR": str(scratch / "cache"),
                       "FSRUN_CONFIG_DIR": str(scratch / "config")}
            if door == "fsrun --model":
                argv = [sys.executable, "-m", FSRUN, str(clip), "--model", str(model),
                        "--no-cache", "-q", "-o", str(scratch / "out.funscript")]
            else:
                argv = [sys.executable, "-m", FSEXPORT, "import", str(model), "-o",
                        str(scratch), "--no-default"]
            log(f"{config.label}: {door} at {size} px ({model_mb:.0f} MB)")
            code, wall, peak, last = measure_process(argv, run_env)
            run = DoorRun(door, size, round(model_mb, 1), code, round(wall, 1), round(peak),
                          "" if code == 0 else last)
            log(f"  exit {code}, {wall:.1f} s, peak {peak:.0f} MB {run.error}")
            result.runs.append(run)
    shutil.rmtree(work / "scratch", ignore_errors=True)
    return result


def write(out: Path, result: ImportMemoryResult) -> list[Path]:
    """import_memory_<label>.json, and import_memory.md from every label's JSON found there."""
    out.mkdir(parents=True, exist_ok=True)
    from fsrun.files.atomic import write_atomic  # noqa: PLC0415

    label = result.config["label"]
    data = out / f"import_memory_{label}.json"
    write_atomic(data, json.dumps(asdict(result), indent=2) + "\n")
    found: dict[str, list[dict]] = {}
    for path in sorted(out.glob("import_memory_*.json")):
        document = json.loads(path.read_text())
        found[document["config"]["label"]] = document["runs"]
    runs = {k: found[k] for k in sorted(found, key=lambda k: (k != "before", k))}
    lines = ["# The ONNX doors' peak memory and time", "",
             "Peak resident memory of the importing process (the kernel's ru_maxrss) and its "
             "wall time, on this machine (2 cores), for a model of the author's architecture "
             "(EfficientNetV2-S, Flatten, Dense(256), two BiLSTM(128), Dense(60); random "
             "weights): `fsrun CLIP --model M.onnx` with an empty cache (cut, check, script a "
             "2 s clip) and `fsexport import M.onnx` (also fp16 graphs and the composite). "
             "Made with `python -m benchmarks.experiments import-memory --work DIR --label "
             "LABEL` (`--pythonpath OLD/runtime/src --label before` for the code as it was).",
             "",
             "| door | size | model MB | " + " | ".join(f"{k} peak MB | {k} s" for k in runs)
             + " |", "|---|---|---|" + "---|---|" * len(runs)]
    keys = [(r["door"], r["size"], r["model_mb"]) for r in next(iter(runs.values()), [])]
    for door, size, model_mb in keys:
        cells = []
        for label_runs in runs.values():
            run = next((r for r in label_runs if (r["door"], r["size"]) == (door, size)), None)
            cells += (["-", "-"] if run is None else
                      [f"{run['peak_mb']:.0f}" + ("" if run["exit_code"] == 0
                                                  else f" (exit {run['exit_code']})"),
                       f"{run['wall_s']:.1f}"])
        lines.append(f"| {door} | {size} | {model_mb:.0f} | " + " | ".join(cells) + " |")
    table = out / "import_memory.md"
    write_atomic(table, "\n".join(lines) + "\n")
    return [data, table]
