"""The optional halves of fsexport: what each command needs beyond the base install, and the
one-line error that names the extra when it is missing."""
from __future__ import annotations

from fsrun.errors import MissingDependencyError

# `fsexport build`, `train` and `import FILE.h5|.keras` need the PyTorch side (about 6 GB);
# `import FILE.onnx`, `quantize`, `check-trt` and `trt` do not.
TORCH_EXTRA = "fsexport[torch]"


def require_torch(command: str) -> None:
    """MissingDependencyError (exit 6, the extra named) unless PyTorch, timm and torchvision
    import."""
    try:
        import timm  # noqa: F401, PLC0415
        import torch  # noqa: F401, PLC0415
        import torchvision  # noqa: F401, PLC0415
    except ImportError:
        raise MissingDependencyError(f"PyTorch, timm and torchvision (for `{command}`)",
                                     TORCH_EXTRA) from None
