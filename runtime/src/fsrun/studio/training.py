"""Train on my labels: `fsexport train` on the folder's labels, then `fsexport build`, each in a
process of its own (fsexport brings PyTorch; the studio never imports it), their lines sent to
the page as they come. The package lands in FOLDER/.fsrun-studio/models/, and the page offers it
as the model to use. Without fsexport's PyTorch side the answer says what to install."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from fsrun.axes import AXES, STROKE, axis_of
from fsrun.files.funscript import TRUTH_SUFFIX
from fsrun.studio.state import STATE_DIR

INSTALL_HINT = "pip install 'fsexport[torch]'"


def labelled_axes(root: Path) -> tuple[str, ...]:
    """The stroke, then every other axis some video under root has a truth file for
    (VIDEO.roll.truth.funscript): the axes a training on the folder's labels learns."""
    found = {axis_of(path) for path in Path(root).rglob(f"*{TRUTH_SUFFIX}")
             if STATE_DIR not in path.parts}
    return (STROKE, *(a for a in AXES if a != STROKE and a in found))


def fsexport_ready() -> str | None:
    """None when `fsexport train` can run here, else what to install."""
    for module in ("fsexport", "torch", "timm"):
        if importlib.util.find_spec(module) is None:
            return f"training needs fsexport with PyTorch: {INSTALL_HINT}"
    return None


class Training:
    def __init__(self, root: Path, publish: Callable[[dict], None]):
        self.root, self.publish = Path(root), publish
        self.work = self.root / STATE_DIR / "train"
        self.package = self.root / STATE_DIR / "models" / "trained.fsmodel"
        self.lock = threading.Lock()
        self.process: subprocess.Popen | None = None
        self.state = {"status": "idle", "lines": [], "package": None}

    def status(self) -> dict:
        with self.lock:
            return {**self.state, "lines": self.state["lines"][-200:],
                    "missing": fsexport_ready()}

    def start(self, variant: str, epochs: int) -> dict:
        missing = fsexport_ready()
        if missing:
            return {"status": "unavailable", "detail": missing}
        with self.lock:
            if self.state["status"] == "running":
                return {"status": "running", "detail": "a training runs already"}
            self.state = {"status": "running", "lines": [], "package": None,
                          "started": time.time()}
        axes = labelled_axes(self.root)
        commands = [
            [sys.executable, "-m", "fsexport.cli", "train", "--data", str(self.root),
             "--output", str(self.work), "--variant", variant, "--epochs", str(epochs),
             *(["--axes", ",".join(axes)] if len(axes) > 1 else [])],
            [sys.executable, "-m", "fsexport.cli", "build", "--variant", variant,
             "--checkpoint", str(self.work / "checkpoint.safetensors"), "--output",
             str(self.package), "--no-default", "--force", "--no-fp16", "--no-composite"],
        ]
        threading.Thread(target=self._run, args=(commands,), name="fsrun-studio-train",
                         daemon=True).start()
        return {"status": "running"}

    def _say(self, line: str) -> None:
        with self.lock:
            self.state["lines"].append(line)
        self.publish({"type": "train", "line": line})

    def cancel(self) -> dict:
        """Stop a training the person started (the child process ends; nothing is offered)."""
        with self.lock:
            if self.state.get("status") != "running":
                return {"status": self.state.get("status", "idle"), "detail": "nothing runs"}
            self.state["status"] = "cancelled"
        self.stop()
        self.publish({"type": "train", "status": "cancelled"})
        return {"status": "cancelled"}

    def _run(self, commands: list[list[str]]) -> None:
        for command in commands:
            with self.lock:
                if self.state["status"] == "cancelled":
                    return
            self._say("$ fsexport " + " ".join(command[3:]))
            self.process = subprocess.Popen(command, stdout=subprocess.PIPE,
                                            stderr=subprocess.STDOUT, text=True)
            for line in self.process.stdout:
                self._say(line.rstrip())
            if self.process.wait() != 0:
                with self.lock:
                    if self.state["status"] == "cancelled":
                        return
                    self.state["status"] = "failed"
                self.publish({"type": "train", "status": "failed"})
                return
        with self.lock:
            self.state.update(status="done", package=str(self.package))
        self.publish({"type": "train", "status": "done", "package": str(self.package)})

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
