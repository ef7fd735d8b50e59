"""Epoch time of `fsexport train` with and without the frozen backbone's feature cache.

`python -m benchmarks train-cache` renders synthetic (video, funscript) pairs, trains each variant
for a few epochs twice (cache on, cache off) with the same seed and windows, and writes
train_cache.json and train_cache.md: seconds per epoch, the one-time backbone pass the cache
costs before epoch 1, and the ratio. Needs the export side (torch, timm).
"""
from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.files import write_json_and_markdown
from fsrun.groundtruth.synth.cli import write_clips


@dataclass
class TrainCacheConfig:
    variants: tuple[str, ...] = ("tiny", "effv2s")  # variants trained both ways
    clips: int = 4  # training + validation clips
    seconds: float = 6.0  # length of each clip
    size: tuple[int, int] = (160, 120)  # clip WxH
    epochs: int = 3  # epochs per run; the first with the cache includes no backbone pass
    windows_per_epoch: int = 16  # windows per epoch
    batch_size: int = 4  # windows per step


def _run(data: Path, out: Path, variant: str, cfg: TrainCacheConfig, cache: bool) -> dict:
    from fsexport.train.loop import TrainConfig, train  # noqa: PLC0415

    started = time.perf_counter()
    result = train(TrainConfig(data=data, output=out, variant=variant, epochs=cfg.epochs,
                               windows_per_epoch=cfg.windows_per_epoch,
                               batch_size=cfg.batch_size, val_fraction=0.25,
                               feature_cache=cache, progress=False, seed=0),
                   echo=lambda _: None)
    epochs = [h["seconds"] for h in result.history]
    return {"cache": cache, "epoch_seconds": epochs, "median_epoch_s": statistics.median(epochs),
            "prepare_s": round(result.prepare_seconds, 3),
            "total_s": round(time.perf_counter() - started, 3),
            "val_loss": result.best_val_loss}


def measure(cfg: TrainCacheConfig, log: Any = print) -> dict[str, Any]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="fsexport-cache-bench-") as scratch:
        root = Path(scratch)
        write_clips(root / "data", cfg.clips, cfg.seconds, ["30"], ["h264"], 0, cfg.size)
        for variant in cfg.variants:
            runs = [_run(root / "data", root / f"{variant}_{cache}", variant, cfg, cache)
                    for cache in (True, False)]
            with_cache, without = runs
            row = {"variant": variant, "with_cache": with_cache, "without_cache": without,
                   "epoch_ratio": without["median_epoch_s"]
                   / max(with_cache["median_epoch_s"], 1e-9),
                   "total_ratio": without["total_s"] / max(with_cache["total_s"], 1e-9)}
            log(f"train-cache {variant}: epoch {with_cache['median_epoch_s']:.2f} s with the "
                f"cache vs {without['median_epoch_s']:.2f} s without ({row['epoch_ratio']:.1f}x)")
            rows.append(row)
    return {"config": cfg.__dict__ | {"size": list(cfg.size), "variants": list(cfg.variants)},
            "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows}


def to_markdown(results: dict[str, Any]) -> str:
    c = results["config"]
    lines = [
        "# Training epoch time with and without the feature cache",
        "",
        f"Frozen backbone, {c['clips']} synthetic clips of {c['seconds']:g} s at "
        f"{c['size'][0]}x{c['size'][1]}, {c['windows_per_epoch']} windows of 60 frames per epoch "
        f"in steps of {c['batch_size']}, {c['epochs']} epochs each way, measured "
        f"{results['measured_at']}. With the cache the backbone runs once per frame before "
        "epoch 1 (one-time pass); every epoch then runs only Dense(256) and the head.",
        "",
        "| variant | epoch s, cache | epoch s, no cache | epoch ratio | one-time pass s | total s, cache / no cache |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in results["rows"]:
        w, wo = row["with_cache"], row["without_cache"]
        lines.append(f"| {row['variant']} | {w['median_epoch_s']:.2f} | "
                     f"{wo['median_epoch_s']:.2f} | "
                     f"{row['epoch_ratio']:.1f}x | {w['prepare_s']:.1f} | "
                     f"{w['total_s']:.1f} / {wo['total_s']:.1f} |")
    return "\n".join(lines) + "\n"


def write(out: Path, results: dict[str, Any]) -> tuple[Path, Path]:
    return write_json_and_markdown(out, "train_cache", results, to_markdown(results))
