"""Loading trained weights safely: safetensors, or torch state dicts with weights_only=True."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from fsrun.errors import ModelError, UsageError

BACKBONE_PREFIX = "encoder.backbone."


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file; pickled objects other than tensors are refused."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: checkpoint not found")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelError(f"{path}: not a readable safetensors file ({exc})") from None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a loadable weights-only checkpoint ({first})") from None
    for key in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ModelError(f"{path}: expected a state dict of tensors")
    return data


def _describe(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def load_checkpoint(model: nn.Module, path: Path, backbone_given: bool = False) -> None:
    """Load a WindowModel checkpoint strictly, naming mismatched keys in a one-line error.

    A checkpoint may leave out the backbone (a frozen backbone need not be saved) when the
    backbone weights come from --pretrained or --backbone-weights.
    """
    state = read_state_dict(path)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    if backbone_given:
        missing = [k for k in missing if not k.startswith(BACKBONE_PREFIX)]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
                   for k in state if k in expected and state[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"missing keys: {_describe(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_describe(unexpected)}")
    if wrong_shape:
        problems.append(f"shape mismatch: {_describe(wrong_shape, 3)}")
    if problems:
        raise ModelError(f"{path}: checkpoint does not match the model; " + "; ".join(problems))
    model.load_state_dict(state, strict=False)


def load_backbone_weights(backbone: nn.Module, path: Path) -> None:
    """Local timm backbone weights (classifier keys are ignored: the backbone has none)."""
    state = read_state_dict(path)
    expected = backbone.state_dict()
    state = {k: v for k, v in state.items() if k in expected}
    missing = [k for k in expected if k not in state]
    wrong = [k for k in state if state[k].shape != expected[k].shape]
    if missing or wrong:
        detail = (f"missing keys: {_describe(missing)}" if missing else "") + \
                 (f" shape mismatch: {_describe(wrong)}" if wrong else "")
        raise ModelError(f"{path}: backbone weights do not match the backbone; {detail.strip()}")
    backbone.load_state_dict(state, strict=True)
