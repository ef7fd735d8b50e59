"""What `fsexport build` and `fsexport import` are asked to write, and where: torch-free, so that
the command line, `--help` and the ONNX door start without importing PyTorch."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from fsrun.errors import UsageError
from fsrun.model.package import ModelMeta

if TYPE_CHECKING:
    from fsexport.quantize import QuantizeConfig

Log = Callable[[str], None]
PACKAGE_SUFFIX = ".fsmodel"


@dataclass
class BuildConfig:
    variant: str = "tiny"  # row of the variant table
    output: Path | None = None  # folder the package goes into (default: cwd), or NAME.fsmodel
    name: str | None = None  # package directory name (default: VARIANT.fsmodel)
    force: bool = False  # replace an existing package directory
    checkpoint: Path | None = None  # trained WindowModel weights (safetensors or state dict)
    pretrained: bool = False  # timm hub weights for the backbone (needs network access)
    backbone_weights: Path | None = None  # local timm backbone weights file
    input_size: int | None = None  # override the variant's input size
    window: int | None = None  # override the window length T
    fps: float | None = None  # override the model's frame rate
    fp16: bool = True  # also write *.fp16.onnx for GPU backends
    composite: bool = True  # also write model.onnx (the one-graph contract)
    set_default: bool = True  # make this package fsrun's default model
    seed: int = 0  # seed for untrained weights, so builds are reproducible
    verify: bool = True  # run the ONNX Runtime vs PyTorch parity checks
    int8: QuantizeConfig | None = None  # also write encoder.int8.onnx (None: no int8 encoder)


@dataclass
class BuildResult:
    path: Path  # the written package directory
    meta: ModelMeta  # what meta.json holds
    timings: dict[str, float] = field(default_factory=dict)  # step -> seconds


def stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def package_dir_for(config: BuildConfig) -> Path:
    """The package directory: --output itself when it ends in .fsmodel, else a folder to put
    NAME (default VARIANT.fsmodel) in."""
    return package_dir(config.output, config.name, f"{config.variant}{PACKAGE_SUFFIX}")


def package_dir(output: Path | None, name: str | None, default_name: str) -> Path:
    """--output itself when it ends in .fsmodel, else the folder --output (default: here) with
    --name (default: default_name) in it; UsageError for a name that is not one folder's."""
    output = Path(output) if output is not None else None
    if output is not None and output.name.endswith(PACKAGE_SUFFIX):
        if name is not None and name != output.name:
            raise UsageError(f"--output {output} names the package; --name {name} "
                             "would name another")
        return output
    name = name or default_name
    if not name or "/" in name or "\\" in name or name in {".", ".."}:
        raise UsageError(f"invalid package name {name!r}")
    return Path(output or Path.cwd()) / name
