"""Files real users bring that look fine and are not: offset clocks, cut-off AVIs, videos of the
same size replaced in place, ONNX models with external weights or the wrong output."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import badfiles
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def remux(source: Path, target: Path, offset_s: float, container: str | None = None) -> Path:
    """source's video packets, untouched, with every timestamp moved by offset_s (a recorder's
    MPEG-TS that starts at 600 s, an MKV cut from a stream, an MP4 whose edit list starts late
    or, negative, early)."""
    with av.open(str(source)) as src, av.open(str(target), "w", format=container) as out:
        video = src.streams.video[0]
        stream = out.add_stream_from_template(video)
        shift = int(round(Fraction(offset_s).limit_denominator(1 << 20) / video.time_base))
        for packet in src.demux(video):
            if packet.dts is None:
                continue
            packet.pts += shift
            packet.dts += shift
            packet.stream = stream
            out.mux(packet)
    return target


def avi(path: Path, count: int = 150, fps: int = 25) -> Path:
    """An MPEG-4 Part 2 AVI (what cameras and DivX wrote): the header counts its frames."""
    return badfiles.write_video(path, count=count, encoder="mpeg4", fps=fps,
                                container_format="avi", width=96, height=72)


def cut_bytes(source: Path, target: Path, keep: float) -> Path:
    """The first `keep` share of source's bytes (a download that stopped)."""
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * keep)])
    return target


def same_size_pair(folder: Path, count: int = 150) -> tuple[Path, Path]:
    """Two different videos of exactly the same byte size: the smaller padded at its end
    (demuxers ignore bytes after the last box), both checked to decode."""
    a = badfiles.write_video(folder / "a.mp4", count=count)
    b_frames = badfiles.moving_frames(count, 64, 48, seed=7)[:, ::-1]  # other content
    b = folder / "b.mp4"
    with av.open(str(b), "w") as container:
        stream = container.add_stream("libx264", rate=30, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i, image in enumerate(b_frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, 30)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    size = max(a.stat().st_size, b.stat().st_size)
    for path in (a, b):
        with open(path, "ab") as f:
            f.write(b"\0" * (size - path.stat().st_size))
    return a, b


def tiny_onnx(path: Path, out_dims: list | None, window: int = 60, size: int = 32,
              dim: int = 8, seed: int = 0, external: str | None = None) -> Path:
    """A one-graph seed-contract model: float32 [B, window, size, size, 3] -> per-frame
    embedding [B*window, dim] (the cut) -> positions of shape `out_dims` ([B, window] is the
    contract; None declares no shape). external: keep the weights in that file beside it."""
    rng = np.random.default_rng(seed)
    pixels = size * size * 3
    width = int(np.prod([d for d in (out_dims or ["B", window])[1:]]))
    weights = {
        "w_frame": rng.normal(0, 1 / pixels ** 0.5, (pixels, dim)).astype(np.float32) / 255,
        "w_head": rng.normal(0, 0.2, (window * dim, width)).astype(np.float32),
        "rows": np.array([-1, pixels], np.int64),
        "per_window": np.array([-1, window * dim], np.int64),
        "out_shape": np.array([-1, *[int(d) for d in (out_dims or ["B", window])[1:]]], np.int64),
    }
    nodes = [
        helper.make_node("Reshape", ["frames", "rows"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w_frame"], ["embedding_mm"]),
        helper.make_node("Relu", ["embedding_mm"], ["embedding"]),
        helper.make_node("Reshape", ["embedding", "per_window"], ["window_flat"]),
        helper.make_node("MatMul", ["window_flat", "w_head"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["squashed"]),
        helper.make_node("Reshape", ["squashed", "out_shape"], ["positions"]),
    ]
    output = (helper.make_tensor_value_info("positions", TensorProto.FLOAT, out_dims)
              if out_dims is not None else
              helper.make_tensor_value_info("positions", TensorProto.FLOAT, None))
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("frames", TensorProto.FLOAT,
                                                      ["B", window, size, size, 3])],
        [output], [numpy_helper.from_array(v, k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    if external:
        onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                  location=external, size_threshold=0)
    else:
        onnx.save(model, str(path))
    return path
