"""A Keras model file (.h5 or .keras) read with h5py: its layer tree and weights, no Keras code.

Two layouts hold the weights:
- `.h5` (Keras 2 `model.save("x.h5")`): `model_config` JSON in the root attributes, one group per
  top-level layer under `model_weights/`, whose `weight_names` attribute lists the variables of
  that layer and of everything nested inside it ("stem_conv/kernel:0", ...).
- `.keras` (a zip of config.json + model.weights.h5): one group per layer, named after its class
  in snake case and numbered per container ("conv2d", "conv2d_1", ...), with the variables as
  `vars/0`, `vars/1`, ... in the order the layer created them.
"""
from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from fsrun.errors import MissingDependencyError, ModelError, UsageError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
CONTAINERS = {"Functional", "Model", "Sequential"}  # classes whose config holds a layer list
RECURRENT = {"LSTM", "GRU", "SimpleRNN"}  # layers whose variables sit in a cell

# Variable order of a layer in a .keras file, by class (flags from the layer's config).
_VAR_ORDER = {
    "Conv2D": lambda c: ["kernel"] + (["bias"] if c.get("use_bias", True) else []),
    "DepthwiseConv2D": lambda c: ["depthwise_kernel"] + (["bias"] if c.get("use_bias", True) else []),
    "Dense": lambda c: ["kernel"] + (["bias"] if c.get("use_bias", True) else []),
    "BatchNormalization": lambda c: (["gamma"] if c.get("scale", True) else [])
    + (["beta"] if c.get("center", True) else []) + ["moving_mean", "moving_variance"],
    "LSTM": lambda c: ["kernel", "recurrent_kernel"] + (["bias"] if c.get("use_bias", True) else []),
    "Normalization": lambda c: ["mean", "variance", "count"],
}


@dataclass
class KerasLayer:
    class_name: str  # Keras class, e.g. "Conv2D"
    name: str  # the layer's own name
    config: dict  # its config dict
    inbound: list[str]  # names of the layers feeding it (same container)
    store: tuple  # where its weights live: ("h5", group, name) or ("keras", path)
    children: list[KerasLayer] = field(default_factory=list)  # nested layers, in config order
    wrapped: KerasLayer | None = None  # the layer inside a TimeDistributed/Bidirectional

    def describe(self) -> str:
        inner = f"({self.wrapped.class_name})" if self.wrapped is not None else ""
        return f"layer '{self.name}' ({self.class_name}{inner})"


def snake_case(name: str) -> str:
    """Keras' own class-name -> weight-group name rule."""
    intermediate = re.sub("(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    insecure = re.sub("([a-z])([A-Z])", r"\1_\2", intermediate).lower()
    return insecure if insecure[0] != "_" else "private" + insecure


def inbound_names(layer_config: dict) -> list[str]:
    """Names of the layers feeding a layer, for Keras 2 and Keras 3 inbound_nodes formats."""
    names: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            history = node.get("keras_history") or node.get("config", {}).get("keras_history")
            if history:
                names.append(history[0])
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            if len(node) >= 3 and isinstance(node[0], str) and isinstance(node[1], int):
                names.append(node[0])
                return
            for value in node:
                walk(value)

    walk(layer_config.get("inbound_nodes", []))
    return names


class KerasFile:
    """The layer tree and the weights of one Keras model file."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._h5, self.model_config, self.layout, self.keras_version = _open(self.path)
        self.root = self._layer(self.model_config, inbound=[], store=self._root_store())

    def close(self) -> None:
        self._h5.close()

    def __enter__(self) -> KerasFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _root_store(self) -> tuple:
        return ("h5", None, None) if self.layout == "h5" else ("keras", "")

    def _layer(self, entry: dict, inbound: list[str], store: tuple) -> KerasLayer:
        if not isinstance(entry, dict) or "class_name" not in entry:
            raise ModelError(f"{self.path}: model config has an entry without a class name")
        config = entry.get("config") or {}
        layer = KerasLayer(entry["class_name"], str(config.get("name", entry.get("name", ""))),
                           config, inbound, store)
        if layer.class_name in CONTAINERS:
            layer.children = self._children(layer)
        inner = config.get("layer")
        if isinstance(inner, dict) and "class_name" in inner:
            sub = "layer" if layer.class_name != "Bidirectional" else "forward_layer"
            layer.wrapped = self._layer(inner, [], self._child_store(store, layer.name, sub))
        return layer

    def _children(self, container: KerasLayer) -> list[KerasLayer]:
        entries = container.config.get("layers") or []
        counters: dict[str, int] = {}
        children, previous = [], None
        for entry in entries:
            config = entry.get("config") or {}
            name = str(config.get("name", entry.get("name", "")))
            group = snake_case(entry.get("class_name", "layer"))
            index = counters.get(group, -1) + 1
            counters[group] = index
            key = group if index == 0 else f"{group}_{index}"
            inbound = inbound_names(entry)
            if container.class_name == "Sequential" and not inbound and previous is not None:
                inbound = [previous]
            store = self._member_store(container.store, name, key)
            children.append(self._layer(entry, inbound, store))
            previous = name
        return children

    def _member_store(self, parent: tuple, name: str, key: str) -> tuple:
        if parent[0] == "h5":
            group = parent[1] if parent[1] is not None else name  # top-level layers own a group
            return ("h5", group, name)
        return ("keras", f"{parent[1]}/layers/{key}".lstrip("/"))

    def _child_store(self, parent: tuple, name: str, sub: str) -> tuple:
        if parent[0] == "h5":
            return ("h5", parent[1] if parent[1] is not None else name, name)
        return ("keras", f"{parent[1]}/{sub}")

    def walk(self, layer: KerasLayer | None = None) -> Iterator[KerasLayer]:
        layer = layer or self.root
        yield layer
        for child in layer.children:
            yield from self.walk(child)
        if layer.wrapped is not None:
            yield from self.walk(layer.wrapped)

    def weights(self, layer: KerasLayer, direction: str | None = None) -> dict[str, np.ndarray]:
        """Variables of a layer by kind ("kernel", "gamma", ...); direction picks a
        Bidirectional's "forward" or "backward" LSTM."""
        if self.layout == "h5":
            return self._h5_weights(layer, direction)
        return self._keras_weights(layer, direction)

    def _h5_weights(self, layer: KerasLayer, direction: str | None) -> dict[str, np.ndarray]:
        _, group_name, name = layer.store
        groups = self._h5["model_weights"] if "model_weights" in self._h5 else self._h5
        if group_name not in groups:
            return {}
        group = groups[group_name]
        found: dict[str, np.ndarray] = {}
        for raw in group.attrs.get("weight_names", []):
            weight = raw.decode("utf8") if isinstance(raw, bytes) else str(raw)
            parts = weight.split("/")
            kind = parts[-1].split(":")[0]
            if direction is not None or layer.class_name in RECURRENT:
                if parts[0] != name or not any(p.startswith(direction or "") for p in parts[1:-1]):
                    continue
            elif len(parts) < 2 or parts[-2] != name:
                continue
            found[kind] = np.asarray(group[weight], dtype=np.float32)
        return found

    def _keras_weights(self, layer: KerasLayer, direction: str | None) -> dict[str, np.ndarray]:
        path = layer.store[1]
        inner = layer
        if direction is not None:
            path = f"{path}/{direction}_layer"
            inner = layer.wrapped or layer
        if inner.class_name in RECURRENT:
            path = f"{path}/cell"
        group = self._h5.get(f"{path}/vars")
        if group is None:
            return {}
        arrays = [np.asarray(group[k], dtype=np.float32) for k in sorted(group, key=int)]
        order = _VAR_ORDER.get(inner.class_name, lambda c: [])(inner.config)
        if len(order) != len(arrays):
            raise ModelError(f"{self.path}: {layer.describe()} stores {len(arrays)} variables, "
                             f"expected {len(order)} ({', '.join(order) or 'none'})")
        return dict(zip(order, arrays))


def _open(path: Path) -> tuple[Any, dict, str, str | None]:
    """(h5py handle on the weights, model config, layout, Keras version); one-line errors."""
    try:
        import h5py
    except ImportError:
        raise MissingDependencyError("h5py (reads Keras files)", "h5py") from None
    if not path.is_file():
        raise UsageError(f"{path}: file not found")
    with open(path, "rb") as f:
        head = f.read(8)
    try:
        if head == HDF5_SIGNATURE:
            handle = h5py.File(path, "r")
            raw = handle.attrs.get("model_config")
            if raw is None:
                handle.close()
                raise ModelError(f"{path}: holds weights but no model_config (saved with "
                                 "save_weights); save the whole model with model.save()")
            config = json.loads(raw.decode("utf8") if isinstance(raw, bytes) else raw)
            version = handle.attrs.get("keras_version")
            version = version.decode() if isinstance(version, bytes) else version
            return handle, config, "h5", None if version is None else str(version)
        if head[:4] == ZIP_SIGNATURE:
            with zipfile.ZipFile(path) as archive:
                config = json.loads(archive.read("config.json"))
                weights = io.BytesIO(archive.read("model.weights.h5"))
                names = archive.namelist()
                metadata = json.loads(archive.read("metadata.json")) if "metadata.json" in names else {}
            return h5py.File(weights, "r"), config, "keras", metadata.get("keras_version")
    except ModelError:
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a readable Keras model file ({reason})") from None
    raise ModelError(f"{path}: not a Keras model file (expected HDF5 .h5 or a .keras zip)")
