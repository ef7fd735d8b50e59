"""What "made the same way" means for a library re-run (fsrun.scale.same_run)."""
from __future__ import annotations

import json
from pathlib import Path

from fsrun.run.request import SessionSpec, VideoRequest
from fsrun.run.postprocess import PostprocessOptions
from fsrun.scale.same_run import compare, run_signature


def _script(path: Path, sha: str = "abc", **options) -> Path:
    base = {"stride": 15, "crop": "full", "start": 0.0, "end": None, "precision": "fp32",
            "resize": "source", **PostprocessOptions().as_dict()}
    meta = {"generator": {"name": "fsrun", "version": "0.1.0"},
            "model": {"name": "m", "sha256": sha}, "options": {**base, **options}}
    path.write_text(json.dumps({"version": "1.0", "inverted": False, "range": 100,
                                "actions": [], "metadata": meta}))
    return path


def test_same_model_and_options_match(tmp_path: Path) -> None:
    signature = run_signature(SessionSpec(), VideoRequest(video=Path("v.mp4")), "abc")
    verdict = compare(_script(tmp_path / "a.funscript"), signature)
    assert verdict.same and verdict.by_fsrun


def test_model_options_and_explicit_precision_differ(tmp_path: Path) -> None:
    signature = run_signature(SessionSpec(), VideoRequest(video=Path("v.mp4")), "abc")
    assert compare(_script(tmp_path / "a.funscript", sha="zzz"), signature).why.startswith(
        "another model")
    verdict = compare(_script(tmp_path / "b.funscript", stride=30, invert=True), signature)
    assert not verdict.same and verdict.by_fsrun
    assert verdict.why == "other options: stride 30 -> 15, invert True -> False"
    # precision is compared only when asked for: "auto" accepts what any worker resolved
    fp16 = run_signature(SessionSpec(precision="fp16"), VideoRequest(video=Path("v.mp4")), "abc")
    plain = _script(tmp_path / "c.funscript")
    assert compare(plain, signature).same
    assert compare(plain, fp16).why == "other options: precision 'fp32' -> 'fp16'"


def test_other_files_are_not_fsruns(tmp_path: Path) -> None:
    signature = run_signature(SessionSpec(), VideoRequest(video=Path("v.mp4")), "abc")
    hand = tmp_path / "hand.funscript"
    hand.write_text(json.dumps({"actions": [{"at": 0, "pos": 0}], "metadata": {"by": "hand"}}))
    (tmp_path / "junk.funscript").write_bytes(b"\xff\x00")
    for path in (hand, tmp_path / "junk.funscript"):
        verdict = compare(path, signature)
        assert not verdict.same and not verdict.by_fsrun and verdict.why == "not written by fsrun"
