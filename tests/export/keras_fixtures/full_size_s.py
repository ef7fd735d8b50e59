"""Parity of `fsexport import` on a full-size model of the author's exact architecture.

kecam EfficientNetV2S(include_preprocessing=True, num_classes=0) at 384 px inside
TimeDistributed(Model(backbone, Flatten, Dense(256, relu), Dropout)), Dropout,
Bidirectional(LSTM(128, return_sequences=True)), Dropout, Bidirectional(LSTM(128)), Dropout,
Dense(60, relu); random weights. The .h5 is ~270 MB: it is made in a scratch folder, never
committed. Two steps, two interpreters:

    # 1. with TensorFlow (fsexport[keras-fixtures]): the .h5, its tf2onnx conversion, Keras' outputs
    TF_USE_LEGACY_KERAS=1 python tests/export/keras_fixtures/full_size_s.py make /tmp/effv2s
    # 2. with fsexport: import both files, compare every graph with Keras' outputs
    python tests/export/keras_fixtures/full_size_s.py check /tmp/effv2s
    # or only the Keras door's PyTorch mapping against Keras (no export: minutes, not an hour)
    python tests/export/keras_fixtures/full_size_s.py mapping /tmp/effv2s

Random BatchNorm statistics (mean 0, variance 1) let activations grow block after block in a
random 40-block backbone, until float32 rounding decides the output (see
fsexport.model.calibrate_batchnorm). As there, the statistics are calibrated: one training-mode
pass over random frames with momentum 0 sets each layer's moving mean and variance to its batch
statistics, as a trained network would have them. The file is then an ordinary Keras model.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "export" / "src"))
NAME = "effv2s_author"
WINDOW, SIZE = 60, 384


def make(folder: Path) -> None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    from keras_cv_attention_models.efficientnet import efficientnet_v2
    from tensorflow import keras

    from fsexport.importers.keras_reference import reference_outputs

    folder.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(7)
    layers = keras.layers
    backbone = efficientnet_v2.EfficientNetV2S(pretrained=None, dropout=1e-6, num_classes=0,
                                               include_preprocessing=True)
    _calibrate_batchnorm(backbone, tf)
    backbone.trainable = False
    inputs = keras.Input(shape=(WINDOW, SIZE, SIZE, 3))
    backbone_inputs = keras.Input(shape=(SIZE, SIZE, 3))
    y = layers.Flatten()(backbone(backbone_inputs))
    y = layers.Dense(256, activation="relu")(y)
    y = layers.Dropout(1e-6)(y)
    x = layers.TimeDistributed(keras.Model(backbone_inputs, y))(inputs)
    x = layers.Dropout(1e-6)(x)
    x = layers.Bidirectional(layers.LSTM(128, return_sequences=True))(x)
    x = layers.Dropout(1e-6)(x)
    x = layers.Bidirectional(layers.LSTM(128, return_sequences=False))(x)
    x = layers.Dropout(1e-6)(x)
    outputs = layers.Dense(60, activation="relu")(x)
    model = keras.Model(inputs, outputs)
    last = model.layers[-1]
    kernel, bias = last.get_weights()
    last.set_weights([kernel, np.full_like(bias, 0.5)])  # away from the final ReLU's zero
    timings = {}
    started = time.perf_counter()
    model.save(folder / f"{NAME}.h5")
    timings["save_h5"] = time.perf_counter() - started
    started = time.perf_counter()
    np.savez_compressed(folder / f"{NAME}.reference.npz", **reference_outputs(model, NAME, one_sample_at_a_time=True))
    timings["keras_reference"] = time.perf_counter() - started
    started = time.perf_counter()
    import tf2onnx

    spec = [tf.TensorSpec((None, WINDOW, SIZE, SIZE, 3), tf.float32, name="input")]
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=17,
                               output_path=str(folder / f"{NAME}.onnx"))
    timings["tf2onnx"] = time.perf_counter() - started
    (folder / "make.json").write_text(json.dumps({"timings_s": timings, "uptime": _uptime()}))
    print(json.dumps({p.name: p.stat().st_size for p in sorted(folder.iterdir())}))


def _calibrate_batchnorm(backbone, tf) -> None:
    norms = [layer for layer in backbone.layers if "BatchNormalization" in type(layer).__name__]
    saved = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    frames = np.random.default_rng(0).integers(0, 256, (8, SIZE, SIZE, 3)).astype(np.float32)
    backbone(tf.constant(frames), training=True)
    for layer, momentum in zip(norms, saved):
        layer.momentum = momentum


def check(folder: Path) -> None:
    from fsexport.importers.config import ImportConfig
    from fsexport.importers.doors import import_model
    from fsexport.importers.keras_reference import BATCHES, frames_sha256, seeded_frames
    from fsrun.model.package import load_package

    import onnxruntime as ort

    with np.load(folder / f"{NAME}.reference.npz") as data:
        reference = {k: data[k] for k in data.files}
    report: dict = {"uptime_before": _uptime()}
    for suffix in ("h5", "onnx"):
        started = time.perf_counter()
        config = ImportConfig(source=folder / f"{NAME}.{suffix}", output=folder,
                              name=f"{NAME}_{suffix}.fsmodel", force=True, set_default=False)
        result = import_model(config, log=lambda line: print(line, file=sys.stderr, flush=True))
        seconds = time.perf_counter() - started
        meta = load_package(result.path).meta
        row = {"import_s": round(seconds, 1), "timings_s": result.timings,
               "package_parity": meta.parity, "backbone": meta.backbone, "vs_keras": {}}
        for name in ("encoder.onnx", "model.onnx", "head.onnx", "encoder.fp16.onnx",
                     "model.fp16.onnx", "head.fp16.onnx"):
            session = ort.InferenceSession(str(result.path / name), providers=["CPUExecutionProvider"])
            for batch in BATCHES:
                frames = seeded_frames(NAME, batch, WINDOW, SIZE)
                assert frames_sha256(frames) == str(reference[f"frames_sha256_b{batch}"])
                positions = reference[f"positions_b{batch}"]
                embeddings = reference[f"embeddings_b{batch}"]
                x, expected = {"encoder": (frames.reshape(-1, SIZE, SIZE, 3), embeddings),
                               "model": (frames, positions),
                               "head": (embeddings.reshape(batch, WINDOW, -1), positions)}[name.split(".")[0]]
                started = time.perf_counter()
                got = np.concatenate([session.run(None, {session.get_inputs()[0].name: part})[0]
                                      for part in np.array_split(x, max(1, len(x) // 20))]) \
                    if name.startswith("encoder") else session.run(None, {session.get_inputs()[0].name: x})[0]
                row["vs_keras"][f"{name} b{batch}"] = {
                    "max_abs_diff": float(np.abs(got - expected).max()),
                    "output_scale": float(np.abs(expected).max()),
                    "seconds": round(time.perf_counter() - started, 1)}
                print(name, batch, row["vs_keras"][f"{name} b{batch}"], file=sys.stderr, flush=True)
        report[suffix] = row
    report["uptime_after"] = _uptime()
    (folder / "check.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


def mapping(folder: Path) -> None:
    """The Keras door's PyTorch mapping (what every package graph is verified against) vs Keras,
    without exporting: the cheap check when a full import does not fit the machine's time."""
    import resource

    import torch

    from fsexport.importers.keras_file import KerasFile
    from fsexport.importers.keras_model import read_keras_model
    from fsexport.importers.keras_reference import BATCHES, frames_sha256, seeded_frames

    report: dict = {"uptime_before": _uptime()}
    started = time.perf_counter()
    with KerasFile(folder / f"{NAME}.h5") as kfile:
        mapped = read_keras_model(kfile, 30.0)
    report["map_s"] = round(time.perf_counter() - started, 1)
    report["backbone"] = mapped.backbone.summary
    report["layers"] = mapped.layers
    with np.load(folder / f"{NAME}.reference.npz") as data:
        reference = {k: data[k] for k in data.files}
    for batch in BATCHES:
        frames = seeded_frames(NAME, batch, WINDOW, SIZE)
        assert frames_sha256(frames) == str(reference[f"frames_sha256_b{batch}"])
        started = time.perf_counter()
        with torch.no_grad():
            embeddings = torch.cat([mapped.model.encoder(torch.from_numpy(part))
                                    for part in np.array_split(frames.reshape(-1, SIZE, SIZE, 3),
                                                               batch * 6)])
            positions = mapped.model.head(embeddings.reshape(batch, WINDOW, -1)).numpy()
        for key, got in (("embeddings", embeddings.numpy()), ("positions", positions)):
            expected = reference[f"{key}_b{batch}"]
            report[f"{key}_b{batch}"] = {"max_abs_diff": float(np.abs(got - expected).max()),
                                         "output_scale": float(np.abs(expected).max())}
        report[f"forward_b{batch}_s"] = round(time.perf_counter() - started, 1)
        print(json.dumps({k: v for k, v in report.items() if "_b" in k}), file=sys.stderr, flush=True)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 1)
    report["uptime_after"] = _uptime()
    (folder / "mapping.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    {"make": make, "check": check, "mapping": mapping}[sys.argv[1]](Path(sys.argv[2]))
