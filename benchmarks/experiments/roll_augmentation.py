"""Which augmentation lets a stroke encoder learn the roll? (the demo's stroke-roll recipe)

`python -m benchmarks.experiments roll-augmentation --package STROKE_DEMO` renders tilting clips
of the randomized family (seeds of its own range), starts the encoder from the package as
`fsexport train --init-from` does (BatchNorm statistics restored, the probe fitted), and runs
the frame stage (fsexport.train.frame_stage.train_frames, the training's own code) once per
augmentation setting, the same steps and draws of frames for each. It writes
roll_augmentation.json and .md: the frame-level validation r of stroke and roll per setting.
Needs the export side (torch, timm, torchvision).
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from benchmarks.files import write_json_and_markdown
from benchmarks.seeds import seed


def _settings() -> dict[str, Any]:
    """Setting name -> AugmentConfig or None (no augmentation)."""
    from fsexport.train.augment import AugmentConfig  # noqa: PLC0415

    full = AugmentConfig(flip=False)  # no mirror while the roll trains, as in training
    return {"none": None, "full": full, "without colour": full.without_colour(),
            "without blur, noise, JPEG": AugmentConfig(flip=False, blur_chance=0.0,
                                                       noise_chance=0.0, jpeg_chance=0.0),
            "without crop": AugmentConfig(flip=False, pad=0.0, crop_area=(1.0, 1.0),
                                          crop_ratio=(1.0, 1.0))}


@dataclass
class RollAugmentationConfig:
    package: Path  # the stroke recipe's package: the encoder every setting starts from
    clips: int = 60  # tilting randomized clips (training + validation)
    seconds: float = 6.0  # length of each clip
    size: tuple[int, int] = (96, 72)  # clip WxH
    steps: int = 600  # frame-stage steps per setting (batches of 64 frames)
    learning_rate: float = 2e-3  # the stroke-roll recipe's frame-stage rate
    val_fraction: float = 0.2  # share of clips held out (by clip)


def measure(cfg: RollAugmentationConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    from fsexport.model import create_model  # noqa: PLC0415
    from fsexport.train.augment import Augmenter  # noqa: PLC0415
    from fsexport.train.dataset import decode_pair, find_pairs, split_by_video  # noqa: PLC0415
    from fsexport.train.frame_stage import train_frames  # noqa: PLC0415
    from fsexport.train.loop import sample_frames  # noqa: PLC0415
    from fsexport.train.warm_start import load_package_encoder, restore_batchnorm  # noqa: PLC0415
    from fsexport.variants import get_variant  # noqa: PLC0415
    from fsrun.groundtruth.synth.cli import write_clips  # noqa: PLC0415
    from fsrun.model.package import load_package  # noqa: PLC0415

    variant = get_variant(load_package(cfg.package).meta.variant)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fsrun-roll-aug-") as scratch:
        data = Path(scratch)
        write_clips(data, cfg.clips, cfg.seconds, ["30"], ["h264"], seed("roll-augmentation"),
                    cfg.size, family="randomized", axes=("stroke", "roll"))
        train_pairs, val_pairs = split_by_video(find_pairs(data, ("stroke", "roll")),
                                                cfg.val_fraction, 0)
        side = variant.input_size
        train_videos = [decode_pair(p, 30.0, side) for p in train_pairs]
        val_videos = [decode_pair(p, 30.0, side) for p in val_pairs]
        for name, augment in _settings().items():
            model = create_model(variant, seed=0, axes=2)
            load_package_encoder(model.encoder, cfg.package)
            restore_batchnorm(model.encoder, sample_frames(train_videos))
            stage = train_frames(model.encoder, train_videos, val_videos, cfg.steps, 64,
                                 cfg.learning_rate, 0, progress=False,
                                 augmenter=None if augment is None else Augmenter(augment, [0, 1]),
                                 warm=True)
            stroke, roll = stage.val_r_axes
            rows.append({"setting": name, "stroke_r": round(stroke, 3), "roll_r": round(roll, 3),
                         "seconds": round(stage.seconds, 1)})
            log(f"roll-augmentation {name}: stroke r {stroke:.3f}, roll r {roll:.3f}")
    return {"config": {**cfg.__dict__, "package": str(cfg.package), "size": list(cfg.size)},
            "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows}


def to_markdown(results: dict[str, Any]) -> str:
    c = results["config"]
    rows = results["rows"]
    by = {row["setting"]: row for row in rows}
    singles = [row for row in rows if row["setting"] not in ("none", "full")]
    best = max(singles, key=lambda row: row["roll_r"])
    lines = [
        "# Which augmentation lets the stroke encoder learn the roll?",
        "",
        f"Without augmentation the encoder reaches roll r **{by['none']['roll_r']}** after "
        f"{c['steps']} frame-stage steps, with every change **{by['full']['roll_r']}**; with one "
        f"kind of change left out {min(r['roll_r'] for r in singles)}-{best['roll_r']} (the "
        f"best: {best['setting']}). The stroke r ranges "
        f"{min(r['stroke_r'] for r in rows)}-{max(r['stroke_r'] for r in rows)}. The demo's "
        "stroke-roll recipe trains without the colour changes (`--augment-colour none`).",
        "",
        f"The encoder of {Path(c['package']).name} (BatchNorm statistics restored, the probe "
        f"fitted, as `--init-from` does), {c['clips']} tilting clips of the randomized family "
        f"({c['seconds']:g} s, {c['size'][0]}x{c['size'][1]}, a fifth held out), {c['steps']} "
        f"steps of 64 frames at {c['learning_rate']:g} (cosine), measured "
        f"{results['measured_at']}; frame-level validation r of the throw-away probe.",
        "",
        "| augmentation | stroke r | roll r | seconds |",
        "| --- | --- | --- | --- |",
        *[f"| {r['setting']} | {r['stroke_r']} | {r['roll_r']} | {r['seconds']} |"
          for r in results["rows"]],
        "",
        "Command: `python -m benchmarks.experiments roll-augmentation --package STROKE_DEMO` "
        "(the stroke recipe's package: `python -m fsexport.train.demo_model --recipe stroke "
        "--output DIR`).",
    ]
    return "\n".join(lines) + "\n"


def write(out: Path, results: dict[str, Any]) -> list[Path]:
    return list(write_json_and_markdown(out / "roll-augmentation", "roll_augmentation",
                                        results, to_markdown(results)))
