"""Tools around the project that are not part of it: fetching the real clips, carrying the
GPU kit to a borrowed GPU machine (tools/gpu_kit)."""
