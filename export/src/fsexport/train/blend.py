"""An encoder between a package and a fine-tune of it: `fsexport train --init-from PKG
--blend-with CHECKPOINT --blend-share S`.

A fine-tune can gain on the clips it trains on and lose elsewhere (the demo's roll fine-tunes
lost one clip of the independent renderer that the package they started from tracked). Weights
taken part of the way from the start to the fine-tuned ones often keep both. The start is the
encoder the fine-tune began from: the package's weights with the BatchNorm scale and shift that
warm_start gives them. Convolution weights, scales and shifts are blended; the running
statistics are not (the start's are set to make its evaluation-mode function the package's,
the fine-tune's were tracked in training), but measured again on training frames: share 0 is
the start as it computes in training mode, where the fine-tune began.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from fsexport.model import FrameEncoder
from fsexport.train.warm_start import measure_batchnorm
from fsrun.errors import UsageError

PREFIX = "encoder."  # the encoder's keys in a WindowModel checkpoint


@torch.no_grad()
def blend_encoder(encoder: FrameEncoder, tuned: Path, share: float, frames: np.ndarray,
                  batch: int = 64) -> None:
    """encoder (the start, already loaded) becomes (1 - share) * start + share * the encoder of
    the checkpoint `tuned`, with its BatchNorm statistics measured on frames (uint8 [N,H,W,3])."""
    if not 0.0 <= share <= 1.0:
        raise UsageError(f"the blend share must lie in [0, 1], got {share}")
    from safetensors import SafetensorError  # noqa: PLC0415

    try:
        state = load_file(str(tuned))
    except (OSError, ValueError, SafetensorError) as error:  # missing, cut off, not one
        raise UsageError(f"{tuned}: not a checkpoint to blend with ({error})") from None
    own = encoder.state_dict()
    theirs = {k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX)}
    if set(theirs) != set(own) or any(theirs[k].shape != v.shape for k, v in own.items()):
        raise UsageError(f"{tuned}: its encoder does not match this variant's")
    if not all(bool(torch.isfinite(v).all()) for v in theirs.values() if v.is_floating_point()):
        raise UsageError(f"{tuned}: its encoder holds NaN or infinite weights")
    encoder.load_state_dict({k: (1 - share) * v + share * theirs[k].to(v.dtype)
                             if v.dtype.is_floating_point else theirs[k]
                             for k, v in own.items()})
    measure_batchnorm(encoder, frames, batch)
