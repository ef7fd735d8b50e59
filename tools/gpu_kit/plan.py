"""The device calls of a 15-minute GPU session, in order: what each carries, runs and may take.

Device time counts from the first call's machine start to the give-back, idle gaps included,
and no machine starts with under 4 minutes left. So the calls are few and full, fired back to
back, and ordered so that the headline numbers come first: NVDEC against PyAV (call 2), then
effv2s end to end on ONNX Runtime CUDA fp16 from a 1080p H.264 file against PyTorch eager fp16
(call 3, first), then effv2m and effv2l (call 3, after the needs_cuda tests). The plan ends by
minute 12, leaving 3 minutes for one repeat of the last call. `python -m tools.gpu_kit plan`
prints the calls for the kit on disk.
"""
from __future__ import annotations

from dataclasses import dataclass

SESSION_S = 15 * 60  # device time of a session, all tries together
PLAN_END_S = 12 * 60  # the plan's calls end by then: one repeat of the last call fits after
MACHINE_START_S = 120  # a fresh machine before the first command runs (measured: 1-2 min)
TRANSFER_S = 15  # sending a ~60 MiB tree + chunk and fetching the results, per call
DEADLINE_MARGIN_S = 40  # the device script stops its stages this long before timeout_s


@dataclass(frozen=True)
class Call:
    chunk: int | None  # which chunk folder it carries (None: none)
    stages: tuple[str, ...]  # device stages, in order
    variants: tuple[str, ...]  # model variants for `packages` and `network`
    timeout_s: int  # the run's limit (the device script's deadline is 40 s under it)
    expected_s: int  # what the run should take on the H100 (estimated; never measured there)
    answers: str  # what the call measures, in words


CALLS: tuple[Call, ...] = (
    Call(1, ("probe", "packages", "clips"), ("effv2s", "effv2m", "effv2l", "tiny"), 240, 90,
         "machine and library versions; package builds start in the background (they run on "
         "through calls 2 and 3); the 1080p 60 s H.264 clip and the NVDEC comparison clips"),
    Call(2, ("nvdec",), (), 270, 150,
         "NVDEC frames against PyAV's (H.264, HEVC, VP9 at 360p and 1080p: timestamps, pixel "
         "difference), NVDEC throughput with 1 and 7 decoders, device memory"),
    Call(3, ("network",), ("effv2s", "effv2m", "effv2l", "tiny"), 300, 270,
         "effv2s end to end (ORT CUDA fp16 and fp32, NVDEC and PyAV) against PyTorch eager "
         "fp16; the needs_cuda tests; effv2m and effv2l fp16; tiny if time is left"),
)


def schedule(calls: tuple[Call, ...] = CALLS) -> list[dict]:
    """When each call starts and ends on the session's clock (expected; first call pays the
    machine start), and whether the plan keeps to PLAN_END_S."""
    rows, clock = [], 0
    for index, call in enumerate(calls):
        start = clock + (MACHINE_START_S if index == 0 else 0)
        end = start + call.expected_s + TRANSFER_S
        rows.append({"call": index + 1, "starts_s": start, "ends_s": end,
                     "worst_end_s": clock + (MACHINE_START_S if index == 0 else 0)
                     + call.timeout_s + TRANSFER_S})
        clock = end
    return rows


def command(call: Call, kit: str, rehearsal: bool = False) -> str:
    """The device call's command line (run in the repository root there)."""
    parts = ["python3", "-m", "tools.gpu_kit.device", "--deadline",
             str(call.timeout_s - DEADLINE_MARGIN_S)]
    if call.chunk is not None:
        parts += ["--chunk", f"{kit}/chunk-{call.chunk:02d}"]
    if call.variants:  # a rehearsal on a CPU builds and measures the tiny variant only
        parts += ["--variants", "tiny" if rehearsal else ",".join(call.variants)]
    if rehearsal:
        parts.append("--rehearsal")
    return " ".join(parts + list(call.stages))
