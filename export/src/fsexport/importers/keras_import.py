"""`fsexport import MODEL.h5|.keras`: the Keras door into a package, TensorFlow not needed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from fsrun.errors import MissingDependencyError, ModelError
from fsrun.model.package import refuse_existing, sha256_file
from fsrun.model.parity import BATCHES, FP32_TOLERANCE, allowed_diff, frames_sha256, seeded_frames

from fsexport.build import build_package_from_model
from fsexport.build_config import BuildResult, Log, package_dir_for, stderr_log
from fsexport.importers.config import ImportConfig
from fsexport.importers.keras_file import KerasFile
from fsexport.importers.keras_model import MappedModel, read_keras_model
from fsexport.variants import Variant


def import_keras(config: ImportConfig, log: Log = stderr_log) -> BuildResult:
    source = Path(config.source)
    build_config = config.build_config()
    refuse_existing(package_dir_for(build_config), config.force)
    log(f"read    {source}")
    with KerasFile(source) as kfile:
        mapped = read_keras_model(kfile, config.fps)
        layout, version = kfile.layout, kfile.keras_version
    log(f"mapped  {len(mapped.layers)} layers: " + "; ".join(mapped.layers))
    provenance = {
        "door": "import-keras",
        "source": {"file": source.name, "sha256": sha256_file(source), "format": layout,
                   "keras_version": version},
        "mapping": {"backbone": mapped.backbone.summary, "layers": mapped.layers},
        "weights": "all from the source file (trained: as trained as the file is)",
    }
    if config.check_keras:
        provenance["parity_vs_keras"] = check_against_keras(source, mapped, config.tf_python, log)
    else:
        provenance["parity_vs_keras"] = None  # not run: --check-keras runs TensorFlow on the file
    backbone = mapped.backbone.summary.get("timm_equivalent") or "efficientnetv2-custom"
    variant = Variant("imported-keras", backbone, mapped.input_size, window=mapped.window,
                      fps=config.fps, embedding_dim=mapped.embedding_dim, dropout=0.0)
    return build_package_from_model(mapped.model, variant, build_config, trained=True,
                                    provenance=provenance, log=log)


def compare_with_reference(mapped: MappedModel, reference: dict, name: str) -> dict:
    """Max abs diff of the PyTorch mapping against Keras' outputs on the same seeded frames."""
    result: dict = {}
    for batch in BATCHES:
        frames = seeded_frames(name, batch, mapped.window, mapped.input_size)
        if str(reference[f"frames_sha256_b{batch}"]) != frames_sha256(frames):
            raise ModelError("the Keras reference was computed on other frames")
        with torch.no_grad():
            positions = mapped.model(torch.from_numpy(frames)).numpy()
        expected = reference[f"positions_b{batch}"]
        diff = float(np.abs(positions - expected).max())
        scale = float(np.abs(expected).max())
        result[f"batch_{batch}"] = {"max_abs_diff": diff, "output_scale": scale}
        if diff > allowed_diff(FP32_TOLERANCE, scale):
            raise ModelError(f"the imported model differs from Keras by {diff:.2e} at batch {batch} "
                             f"(allowed {allowed_diff(FP32_TOLERANCE, scale):.1e})")
    return result


def check_against_keras(source: Path, mapped: MappedModel, tf_python: str | None, log: Log) -> dict:
    """Run the original file in TensorFlow (another process) and compare."""
    python = tf_python or sys.executable
    import fsrun  # noqa: PLC0415 - keras_reference takes its seeded frames from fsrun.model.parity

    sources = [str(Path(__file__).resolve().parents[2]), str(Path(fsrun.__file__).parents[1])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*sources, os.environ.get("PYTHONPATH", "")]),
           "TF_USE_LEGACY_KERAS": os.environ.get("TF_USE_LEGACY_KERAS", "1")}
    name = f"check/{source.name}"
    log(f"keras   running {source.name} in TensorFlow ({python})")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "reference.npz"
        done = subprocess.run([python, "-m", "fsexport.importers.keras_reference", str(source),
                               str(out), "--name", name], env=env, capture_output=True, text=True)
        if done.returncode == 6:
            raise MissingDependencyError(f"TensorFlow (for --check-keras, in {python}; or pass "
                                         "--tf-python)", "fsexport[keras-fixtures]")
        if done.returncode != 0 or not out.is_file():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise ModelError(f"{source}: TensorFlow could not run the file ({last})")
        with np.load(out) as data:
            reference = {k: data[k] for k in data.files}
    result = compare_with_reference(mapped, reference, name)
    log(f"keras   max abs diff vs TensorFlow: {json.dumps(result)}")
    return result
