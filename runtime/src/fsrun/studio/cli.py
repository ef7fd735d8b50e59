"""`fsrun studio [FOLDER]`: serve the studio on this machine and open it in the browser."""
from __future__ import annotations

import socket
import webbrowser
from pathlib import Path
from typing import Any

import click

from fsrun.files.atomic import os_reason
from fsrun.errors import InputError, MissingDependencyError, UsageError
from fsrun.run.request import SessionSpec
from fsrun.studio.security import LOOPBACK
from fsrun.studio.state import StudioState

EXTRA = "fsrun[studio]"


def _server_modules() -> tuple[Any, Any]:
    try:
        import starlette  # noqa: F401, PLC0415
        import uvicorn  # noqa: PLC0415
    except ImportError:
        raise MissingDependencyError("Starlette and uvicorn (for fsrun studio)", EXTRA) from None
    from fsrun.studio import app  # noqa: PLC0415

    return app, uvicorn


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port} ({os_reason(exc)})") from None
    sock.listen(128)
    return sock


SHUTDOWN_S = 2  # seconds Ctrl-C gives open connections before the studio stops


def _listen(host: str, port: int, last_port: int) -> socket.socket:
    """--port when given; else the port this folder's studio had last time when it is free (a
    restart keeps the open tab's address), else a free one."""
    if port == 0 and last_port:
        try:
            return bind(host, last_port)
        except UsageError:
            pass  # taken meanwhile: a new port, said by the printed address
    return bind(host, port)


def _announce(studio, no_browser: bool) -> None:
    """The address (with its token), once the server answers and its Ctrl-C handler is in
    place: a Ctrl-C right after the address is seen stops the studio like any other."""
    click.echo(f"fsrun studio: {studio.url()}")
    click.echo(f"folder: {studio.root}  (Ctrl-C stops the studio)", err=True)
    if not no_browser:
        webbrowser.open(studio.url())


def _announcing_server(uvicorn):
    """uvicorn.Server that calls `started()` when its startup is done."""

    class AnnouncingServer(uvicorn.Server):
        def __init__(self, config, started) -> None:
            super().__init__(config)
            self._started_callback = started

        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=sockets)
            if not self.should_exit:
                self._started_callback()

    return AnnouncingServer


@click.command("studio")
@click.argument("folder", required=False, default=".",
                type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", "-m", type=click.Path(path_type=Path), default=None,
              help="Model package or .onnx model (default: as `fsrun` picks it).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port to listen on (0: a free one).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback lets other machines reach "
                   "the studio (they still need the token).")
@click.option("--no-browser", is_flag=True, help="Print the address; do not open a browser.")
@click.option("--cache-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Cache root: embeddings, packages cut from .onnx models, TensorRT engines "
                   "(default: $FSRUN_CACHE_DIR, else the user cache folder).")
def studio_command(folder: Path, model: Path | None, port: int, host: str, no_browser: bool,
                   cache_dir: Path | None) -> None:
    """Script, review, correct and label the videos of FOLDER in a local web app."""
    app_module, uvicorn = _server_modules()
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    token, last_port = StudioState(folder).address()
    sock = _listen(host, port, last_port)
    studio = app_module.Studio(folder, SessionSpec(model=model, cache_dir=cache_dir), host=host,
                               **({"token": token} if token else {}))
    studio.port = sock.getsockname()[1]
    studio.state.remember_address(studio.token, studio.port)
    if host not in LOOPBACK and not host.startswith("127."):
        click.echo(f"fsrun: WARNING: the studio listens on {host}: other machines can reach "
                   "it; keep the address (it holds the token) to yourself", err=True)
    # Everything from here on inside the try: a Ctrl-C during start-up (before the server has
    # its handler and prints the address) still stops the worker, whose thread would otherwise
    # keep the process alive.
    try:
        studio.jobs.start()
        # An open tab holds its event stream for ever: Ctrl-C closes it after SHUTDOWN_S rather
        # than wait for the page to leave.
        server = _announcing_server(uvicorn)(
            uvicorn.Config(app_module.build_app(studio), log_level="warning", access_log=False,
                           timeout_graceful_shutdown=SHUTDOWN_S),
            lambda: _announce(studio, no_browser))
        server.run(sockets=[sock])
    finally:
        studio.close()
        sock.close()
