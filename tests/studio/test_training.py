"""Train on my labels, end to end: the studio runs `fsexport train` and `fsexport build` in
processes of their own on the folder's truth files, shows their lines, and then offers the
package, which the queue uses (about 15 s: one epoch of the tiny variant on three clips)."""
from __future__ import annotations

from pathlib import Path

import pytest

from fsrun.files.funscript import read_funscript

from .conftest import token_headers, videos_in, wait_for

pytest.importorskip("torch", reason="training needs fsexport[torch]")


def test_train_on_the_folders_labels_then_use_the_model(make_studio, library: Path) -> None:
    studio, client = make_studio(library)
    headers = token_headers(studio)
    heard = studio.events.listen()
    answer = client.post("/api/train", json={"variant": "tiny", "epochs": 1}, headers=headers)
    assert answer.json()["status"] == "running"
    again = client.post("/api/train", json={"variant": "tiny", "epochs": 1}, headers=headers)
    assert "runs already" in again.json()["detail"]
    state = wait_for(lambda: (lambda s: s if s["status"] != "running" else None)(
        client.get("/api/train", headers=headers).json()), timeout=600, every=1.0)
    assert state["status"] == "done", "\n".join(state["lines"][-20:])
    assert any(line.startswith("$ fsexport train") for line in state["lines"])
    assert any(line.startswith("$ fsexport build") for line in state["lines"])
    lines = []
    while not heard.empty():
        event = heard.get()
        if event["type"] == "train" and "line" in event:
            lines.append(event["line"])
    assert len(lines) >= 4  # the page heard the processes' output as it came
    models = client.get("/api/model", headers=headers).json()
    assert models["choices"][1]["available"]
    client.post("/api/model", json={"model": "trained"}, headers=headers)
    name = videos_in(library)[0]
    client.post("/api/jobs", json={"videos": [name]}, headers=headers)
    job = wait_for(lambda: [j for j in client.get("/api/jobs", headers=headers).json()["jobs"]
                            if j["status"] not in ("queued", "running")], timeout=120)[0]
    assert job["status"] == "done", job["detail"]
    written = read_funscript((library / name).with_suffix(".funscript"))
    assert written["metadata"]["model"]["name"] == "trained.fsmodel"
    assert written["metadata"]["model"]["trained"] is True
