"""Options of `fsexport import`, shared by the Keras and the ONNX door."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fsexport.build_config import BuildConfig


@dataclass
class ImportConfig:
    source: Path  # the creator's file: .h5 / .keras (Keras) or .onnx
    output: Path | None = None  # folder the package directory is written into (default: cwd)
    name: str | None = None  # package directory name (default: SOURCE_STEM.fsmodel)
    force: bool = False  # replace an existing package directory
    fps: float = 30.0  # frame rate the model was trained at (files do not record it)
    fp16: bool = True  # also write *.fp16.onnx for GPU backends
    set_default: bool = True  # make the package fsrun's default model
    split_at: str | None = None  # ONNX: embedding tensor to cut at (default: found automatically)
    check_keras: bool = False  # Keras: also run the original in TensorFlow and compare
    tf_python: str | None = None  # interpreter with TensorFlow for check_keras (default: this one)

    def build_config(self) -> BuildConfig:
        """The package-writing options, in the form `fsexport build` uses."""
        return BuildConfig(variant="imported", output=self.output,
                           name=self.name or f"{Path(self.source).stem}.fsmodel", force=self.force,
                           fp16=self.fp16, set_default=self.set_default)
