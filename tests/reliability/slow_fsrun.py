"""`python slow_fsrun.py ARGS...`: the real fsrun CLI with every encoder call slowed down.

The tiny model encodes a test clip in a blink; a delay per batch ($FSRUN_TEST_ENCODER_DELAY
seconds) leaves time to interrupt a run midway or to run two processes side by side.
"""
from __future__ import annotations

import os
import sys
import time

import fsrun.run.plan
from fsrun.cli import main

DELAY_S = float(os.environ.get("FSRUN_TEST_ENCODER_DELAY", "0.05"))
_create = fsrun.run.plan.create_backend


class _Slow:
    def __init__(self, inner):
        self.inner = inner

    def run(self, batch):
        time.sleep(DELAY_S)
        return self.inner.run(batch)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _slow_create(name, onnx_path, options=None):
    backend = _create(name, onnx_path, options)
    return _Slow(backend) if "encoder" in str(onnx_path) else backend


fsrun.run.plan.create_backend = _slow_create

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
