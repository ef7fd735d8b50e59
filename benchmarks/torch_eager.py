"""PyTorch eager fp16 on the GPU: the pipeline fsrun is compared with on NVIDIA machines.

PyAV decodes full frames on the CPU, each batch goes to the GPU (pinned memory, async copy), the
WindowModel's encoder runs in half precision (resize inside, on the GPU), then the head over
windows at stride 30. The weights come from the same variant and seed as an untrained package;
throughput does not depend on the weights' values. Export-side code: imports torch and timm.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable


from fsrun.model.package import load_package
from fsrun.run.sampling import TimestampSampler
from fsrun.sources.pyav_source import PyAvSource
from fsrun.run.stitching import gather_windows, plan_windows


def measure_torch_eager(package_path: Path, video: Path, batch: int = 16, stride: int = 30,
                        log: Callable[[str], None] = print) -> dict[str, Any]:
    import torch  # noqa: PLC0415

    from fsexport.model import create_model  # noqa: PLC0415
    from fsexport.variants import get_variant  # noqa: PLC0415

    if not torch.cuda.is_available():
        return {"variant": None, "skipped": "torch has no CUDA device"}
    meta = load_package(package_path).meta
    variant = get_variant(meta.variant).with_overrides(meta.input_size, meta.window, meta.fps)
    model = create_model(variant, seed=int(meta.provenance.get("seed", 0)))
    model = model.half().cuda().eval()
    device = torch.device("cuda")

    def run() -> tuple[int, float]:
        embeddings = []
        source = PyAvSource(video)
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.inference_mode():
            for item in source.batches(TimestampSampler(meta.fps), batch):
                host = torch.from_numpy(item.frames).pin_memory()
                frames = host.to(device, non_blocking=True)
                embeddings.append(model.encoder(frames).float())
            table = torch.cat(embeddings).cpu().numpy()
            plan = plan_windows(len(table), meta.window, stride)
            for first in range(0, plan.count, 32):
                windows = torch.from_numpy(gather_windows(table, plan, first, 32)).to(device)
                model.head(windows.half()).float().cpu()
        torch.cuda.synchronize()
        source.close()
        return len(table), time.perf_counter() - start

    run()  # warm-up: cuDNN algorithm choice, allocator
    torch.cuda.reset_peak_memory_stats()
    frames, seconds = run()
    result = {"variant": meta.variant, "frames": frames, "wall": seconds,
              "fps": frames / seconds, "batch": batch, "stride": stride,
              "peak_device_mib": torch.cuda.max_memory_allocated() / 2**20,
              "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    log(f"torch   {meta.variant:7s} eager fp16: {result['fps']:.1f} frames/s")
    del model
    torch.cuda.empty_cache()
    return result


__all__ = ["measure_torch_eager"]
