"""The table of model variants: one row per backbone and default input size."""
from __future__ import annotations

from dataclasses import dataclass, replace

from fsrun.errors import UsageError


@dataclass(frozen=True)
class Variant:
    name: str  # name used on the command line and in meta.json
    backbone: str  # timm model name
    input_size: int  # square side every frame is resized to inside the encoder
    window: int = 60  # frames in and positions out (T)
    fps: float = 30.0  # frame rate the model is trained and run at
    embedding_dim: int = 256  # Dense after the flattened backbone features
    lstm_units: int = 128  # units per direction of each bidirectional LSTM
    dropout: float = 1e-6  # as in the author's model; kept for weight compatibility
    backbone_args: tuple[tuple[str, float], ...] = ()  # keywords of the timm constructor

    def with_overrides(self, input_size: int | None = None, window: int | None = None,
                       fps: float | None = None) -> Variant:
        """A copy with the per-build overrides applied (None keeps the table value)."""
        changes = {k: v for k, v in
                   {"input_size": input_size, "window": window, "fps": fps}.items() if v is not None}
        return replace(self, **changes)


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("tiny", "test_efficientnet", 64),
        Variant("effv2s", "tf_efficientnetv2_s", 384),
        Variant("effv2m", "tf_efficientnetv2_m", 480),
        Variant("effv2l", "tf_efficientnetv2_l", 480),
        # small backbones for synthetic demo models (demo_recipes.md compares them with tiny)
        Variant("tiny-x2", "test_efficientnet", 64, backbone_args=(("channel_multiplier", 2.0),)),
        Variant("mnv3s", "mobilenetv3_small_075", 64),
    )
}


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        valid = ", ".join(VARIANTS)
        raise UsageError(f"unknown variant {name!r}; valid variants: {valid}") from None
