"""Rebuild the Keras/ONNX import fixtures (needs TensorFlow: `pip install 'fsexport[keras-fixtures]'`).

    TF_USE_LEGACY_KERAS=1 python tests/export/keras_fixtures/make_fixtures.py

Each fixture is a small model of the creator's structure (EfficientNetV2 backbone inside a
TimeDistributed per-frame model, Flatten, Dense, bidirectional LSTMs, Dense(T)), with random
weights at a scale that exercises every mapped tensor (BatchNorm statistics included), saved as
Keras .h5 (and one .keras), converted with tf2onnx, and run by Keras itself on seeded random uint8
frames at two batch sizes: NAME.reference.npz holds those outputs, the per-frame embeddings and
the sha256 of the frames, so the tests compare against TensorFlow without needing it.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # keras-cv-attention-models needs Keras 2
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow import keras  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "export" / "src"))
from fsexport.importers.keras_reference import reference_outputs  # noqa: E402  (no torch needed)

SEED = 20240601


def kecam_backbone(size: int, torch_mode: bool, rescale_mode: str) -> keras.Model:
    """keras-cv-attention-models' EfficientNetV2 base with S-like stages, a few channels wide."""
    from keras_cv_attention_models.efficientnet import efficientnet_v2

    return efficientnet_v2.EfficientNetV2(
        expands=[1, 4, 4, 4, 6], out_channels=[8, 16, 24, 32, 40], depthes=[2, 2, 1, 2, 1],
        strides=[1, 2, 2, 2, 1], se_ratios=[0, 0, 0, 0.25, 0.25], first_conv_filter=8,
        output_conv_filter=64, input_shape=(size, size, 3), num_classes=0, dropout=1e-6,
        include_preprocessing=True, pretrained=None, rescale_mode=rescale_mode,
        is_torch_mode=torch_mode, model_name="efficientnet_v2-tiny")


def keras_app_backbone(size: int) -> keras.Model:
    """Keras applications' EfficientNetV2 with small custom block args (V1-style preprocessing)."""
    from tf_keras.src.applications import efficientnet_v2 as app

    # Filters are scaled by width_coefficient 0.05 (and rounded to multiples of 8): 160 -> 8,
    # and the fixed 1280-wide top convolution -> 64.
    block = dict(kernel_size=3, se_ratio=0.0, conv_type=1)
    blocks = [
        {**block, "num_repeat": 1, "input_filters": 160, "output_filters": 160, "expand_ratio": 1,
         "strides": 1},
        {**block, "num_repeat": 2, "input_filters": 160, "output_filters": 320, "expand_ratio": 4,
         "strides": 2},
        {**block, "num_repeat": 2, "input_filters": 320, "output_filters": 480, "expand_ratio": 4,
         "strides": 2, "se_ratio": 0.25, "conv_type": 0},
        {**block, "num_repeat": 1, "input_filters": 480, "output_filters": 640, "expand_ratio": 2,
         "strides": 2, "se_ratio": 0.25, "conv_type": 0},
    ]
    # A model name starting with "b" selects Rescaling(1/255) + Normalization(ImageNet mean, var).
    return app.EfficientNetV2(width_coefficient=0.05, depth_coefficient=1.0, default_size=size,
                              blocks_args=blocks, model_name="efficientnetv2-b0", include_top=False,
                              weights=None, input_shape=(size, size, 3), include_preprocessing=True)


def window_model(backbone: keras.Model, window: int, size: int, embed: int,
                 head: list[tuple[str, int, bool]]) -> keras.Model:
    """The creator's structure; head rows are (kind, units, return_sequences).

    kind "bilstm_loop" sets a (no-op at inference) recurrent dropout, which makes TensorFlow
    and so tf2onnx write the recurrence as a Loop instead of the ONNX LSTM op.
    """
    layers = keras.layers
    inputs = keras.Input(shape=(window, size, size, 3))
    frame_in = keras.Input(shape=(size, size, 3))
    y = layers.Flatten()(backbone(frame_in))
    y = layers.Dense(embed, activation="relu")(y)
    y = layers.Dropout(1e-6)(y)
    x = layers.TimeDistributed(keras.Model(frame_in, y))(inputs)
    x = layers.Dropout(1e-6)(x)
    for kind, units, sequences in head:
        if kind in ("bilstm", "bilstm_loop"):
            dropout = 1e-6 if kind == "bilstm_loop" else 0.0
            x = layers.Bidirectional(layers.LSTM(units, return_sequences=sequences,
                                                 recurrent_dropout=dropout))(x)
        elif kind == "bigru":
            x = layers.Bidirectional(layers.GRU(units, return_sequences=sequences))(x)
        else:
            x = layers.Dense(units, activation="relu")(x)
        x = layers.Dropout(1e-6)(x)
    outputs = layers.Dense(window, activation="relu")(x)
    return keras.Model(inputs, outputs)


def randomize(model: keras.Model, seed: int) -> None:
    """Nonzero, distinguishable values in every tensor the importer maps."""
    rng = np.random.default_rng(seed)
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = (w.numpy() for w in layer.weights)
            layer.set_weights([rng.uniform(0.6, 1.4, gamma.shape), rng.normal(0, 0.2, beta.shape),
                               rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 2.0, var.shape)])
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and layer.use_bias:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.1, bias.shape)])
    last = model.layers[-1]
    kernel, bias = last.get_weights()
    last.set_weights([kernel, np.full_like(bias, 0.5)])  # positions away from the final ReLU's 0


def _all_layers(model: keras.Model):
    for layer in model.layers:
        inner = getattr(layer, "layer", None)
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        elif isinstance(inner, keras.Model):
            yield from _all_layers(inner)
        elif isinstance(layer, keras.layers.Bidirectional):
            yield layer.forward_layer
            yield layer.backward_layer
        else:
            yield layer


def save_reference(name: str, model: keras.Model) -> None:
    np.savez_compressed(HERE / f"{name}.reference.npz", **reference_outputs(model, name))


def to_onnx(name: str, model: keras.Model, window: int, size: int) -> None:
    import tf2onnx

    spec = [tf.TensorSpec((None, window, size, size, 3), tf.float32, name="input")]
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=17,
                               output_path=str(HERE / f"{name}.onnx"))


FIXTURES = {
    # name: (backbone factory, window, size, Dense width, head rows, extra formats)
    "kecam_s_like": (lambda s: kecam_backbone(s, False, "tf"), 60, 48, 32,
                     [("bilstm", 16, True), ("bilstm", 16, False)], {"keras", "onnx"}),
    "keras_app": (keras_app_backbone, 20, 64, 48,
                  [("bilstm", 12, True), ("bilstm", 12, False)], {"onnx"}),
    "kecam_dense64_deep": (lambda s: kecam_backbone(s, True, "torch"), 60, 32, 64,
                           [("bilstm_loop", 24, True), ("bilstm_loop", 16, True),
                            ("bilstm_loop", 16, False), ("dense", 64, False)], {"onnx"}),
    "gru_head": (lambda s: kecam_backbone(s, False, "tf"), 16, 32, 32,
                 [("bilstm", 8, True), ("bigru", 8, False)], set()),
}


def main(names: list[str]) -> None:
    keras.utils.set_random_seed(SEED)
    for name in names or list(FIXTURES):
        factory, window, size, embed, head, formats = FIXTURES[name]
        model = window_model(factory(size), window, size, embed, head)
        randomize(model, SEED)
        model.save(HERE / f"{name}.h5")
        if "keras" in formats:
            model.save(HERE / f"{name}.keras")
        save_reference(name, model)
        if "onnx" in formats:
            to_onnx(name, model, window, size)
        sizes = {p.name: p.stat().st_size for p in sorted(HERE.glob(f"{name}.*"))}
        print(json.dumps({"fixture": name, "bytes": sizes}))


if __name__ == "__main__":
    main(sys.argv[1:])
