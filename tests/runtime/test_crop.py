"""Crop specs: parsing, resolving against the frame size, applying to host frames."""
from __future__ import annotations

import numpy as np
import pytest

from fsrun.crop import apply_crop, parse_crop
from fsrun.errors import UsageError
from fsrun.crop import Crop


def test_parse_and_resolve() -> None:
    assert parse_crop("full").resolve(640, 480) is None
    assert parse_crop(None).resolve(640, 480) is None
    assert parse_crop("sbs-left").resolve(3840, 1920) == Crop(0, 0, 1920, 1920)
    assert parse_crop("sbs-right").resolve(3841, 1920) == Crop(1921, 0, 1920, 1920)
    assert parse_crop("10,20,100,50").resolve(640, 480) == Crop(10, 20, 100, 50)
    assert str(parse_crop(" 10, 20,100,50")) == "10,20,100,50"


@pytest.mark.parametrize("text", ["left", "1,2,3", "a,b,c,d", "0,0,0,10", "-1,0,10,10"])
def test_bad_specs_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_crop(text)


def test_box_must_fit() -> None:
    with pytest.raises(UsageError, match="does not fit"):
        parse_crop("600,0,100,100").resolve(640, 480)


def test_apply_crop_is_a_view_of_the_box() -> None:
    frames = np.arange(2 * 6 * 8 * 3, dtype=np.uint8).reshape(2, 6, 8, 3)
    out = apply_crop(frames, Crop(2, 1, 4, 3))
    assert out.shape == (2, 3, 4, 3)
    assert np.array_equal(out, frames[:, 1:4, 2:6])
    assert apply_crop(frames, None) is frames
