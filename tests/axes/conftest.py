"""Packages of one and of two axes whose stroke is the same function, and a short clip."""
from __future__ import annotations

from pathlib import Path

import pytest

from fsrun.groundtruth.seeds import seed
from fsrun.groundtruth.synth.cli import write_clips


@pytest.fixture(scope="session")
def axis_packages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(stroke-only package, stroke+roll package): the tiny variant, the same encoder and LSTMs,
    the two-axis head's stroke outputs the one-axis head's Dense rows (its roll rows others)."""
    import torch  # noqa: PLC0415

    from fsexport.build import BuildConfig, build_package_from_model  # noqa: PLC0415
    from fsexport.model import create_model  # noqa: PLC0415
    from fsexport.variants import get_variant  # noqa: PLC0415

    variant = get_variant("tiny")
    one = create_model(variant, seed=3)
    two = create_model(variant, seed=4, axes=2)
    state = {k: v for k, v in one.state_dict().items() if not k.startswith("head.fc.")}
    two.load_state_dict(state, strict=False)
    with torch.no_grad():
        fc1, fc2 = one.head.fc, two.head.fc
        fc2.weight[0::2] = fc1.weight  # output w * C + c: c = 0 is the stroke
        fc2.bias[0::2] = fc1.bias
        fc2.bias[1::2] = 0.5  # the roll inside its range, so it moves
    two.axis_names = ("stroke", "roll")
    out = tmp_path_factory.mktemp("axis-packages")
    paths = []
    for model, name in ((one, "one.fsmodel"), (two, "two.fsmodel")):
        config = BuildConfig(variant="tiny", output=out, name=name, set_default=False,
                             fp16=False, composite=False)
        paths.append(build_package_from_model(model, variant, config, trained=False,
                                              log=lambda _: None).path)
    return paths[0], paths[1]


@pytest.fixture(scope="session")
def roll_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4 s clip with a tilting target and its stroke and roll truth."""
    folder = tmp_path_factory.mktemp("roll-clip")
    [clip] = write_clips(folder, 1, 4.0, ["30"], ["h264"], seed("tests-studio", 500), (96, 72),
                         axes=("stroke", "roll"))
    return clip.video
