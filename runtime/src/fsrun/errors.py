"""Error types with distinct exit codes, so scripts can tell bad usage from a bad file or model."""
from __future__ import annotations


class FsError(Exception):
    """Base error: its message is printed as one line, and its exit code is returned."""

    exit_code = 1


class UsageError(FsError):
    """Bad command-line options or values."""

    exit_code = 2


class InputError(FsError):
    """A video that cannot be read or decoded."""

    exit_code = 3


class ModelError(FsError):
    """A model package that is missing, damaged, or of an unknown format."""

    exit_code = 4


class OutputError(FsError):
    """An output that cannot be written, or exists already without --force."""

    exit_code = 5


class MissingDependencyError(FsError):
    """An optional library (GPU extras, TensorRT) is not installed."""

    exit_code = 6

    def __init__(self, library: str, extra: str):
        super().__init__(f"{library} is not installed; install it with: pip install '{extra}'")
        self.library = library
        self.extra = extra

    def __reduce__(self) -> tuple:  # pickles (a Ray worker hands it to the driver)
        return self.__class__, (self.library, self.extra)


class Interrupted(FsError):
    """SIGINT or SIGTERM: the run stopped cleanly, nothing half-written."""

    exit_code = 130


EXIT_CODES = {
    "ok": 0,
    "failure": 1,
    "usage": UsageError.exit_code,
    "input": InputError.exit_code,
    "model": ModelError.exit_code,
    "output": OutputError.exit_code,
    "missing-dependency": MissingDependencyError.exit_code,
    "interrupted": Interrupted.exit_code,
}


def exit_code_of(exc: BaseException) -> int:
    """The one mapping from an error to the exit code fsrun gives for it (the command line, a
    failed run's report, a folder's table): an fsrun error its own, Ctrl-C 130, a disk error the
    code did not expect 5 (output), anything else 1."""
    if isinstance(exc, FsError):
        return int(exc.exit_code)
    if isinstance(exc, KeyboardInterrupt):
        return Interrupted.exit_code
    if isinstance(exc, OSError):
        return OutputError.exit_code
    return EXIT_CODES["failure"]
