"""`python -m tools.gpu_kit download|calls`: prepare the GPU kit where pip works."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from tools.gpu_kit.chunks import MiB
from tools.gpu_kit.download import CALL_LIMIT_BYTES, KIT_DIR, build_kit, call_sizes, python_tag


@click.group()
def main() -> None:
    """The GPU kit: wheels for the GPU machine, split into one-call chunks (README.md)."""


@main.command()
@click.option("--python-version", default="3.12", show_default=True,
              help="Python of the machine that installs the kit (the GPU machine has 3.12).")
@click.option("--kit-dir", type=click.Path(path_type=Path, file_okay=False), default=KIT_DIR,
              show_default=True, help="Git-ignored folder for downloads and chunks.")
@click.option("--chunk-mib", type=click.IntRange(1, 63), default=None,
              help="Chunk size [default: as large as fits beside the working tree, <= 55].")
@click.option("--full-ort", is_flag=True,
              help="Carry onnxruntime-gpu whole (244 MiB, 4 more calls) instead of slimmed to "
                   "the H100's kernels: the fallback if the slimmed provider does not load.")
def download(python_version: str, kit_dir: Path, chunk_mib: int | None, full_ort: bool) -> None:
    """Download the wheels (and what the GPU machine lacks) and split them into chunks."""
    try:
        build_kit(python_version, kit_dir, chunk_mib=chunk_mib,
                  log=lambda line: click.echo(line, err=True), full_ort=full_ort)
    except (RuntimeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(kit_dir / python_tag(python_version)))


@main.command()
@click.option("--python-version", default="3.12", show_default=True)
@click.option("--kit-dir", type=click.Path(path_type=Path, file_okay=False), default=KIT_DIR,
              show_default=True)
def calls(python_version: str, kit_dir: Path) -> None:
    """What each chunk's device call carries now (tree + chunk) against the 64 MiB limit."""
    kit = kit_dir / python_tag(python_version)
    if not (kit / "manifest.json").is_file():
        raise click.ClickException(f"no kit in {kit}: run `python -m tools.gpu_kit "
                                   f"download --python-version {python_version}` first")
    rows = call_sizes(kit)
    for row in rows:
        size = "missing" if row["chunk_bytes"] is None else f"{row['chunk_bytes'] / MiB:.1f} MiB"
        total = "-" if row["call_bytes"] is None else f"{row['call_bytes'] / MiB:.1f} MiB"
        click.echo(f"{row['chunk']}: chunk {size}, tree {row['tree_bytes'] / MiB:.2f} MiB, "
                   f"call {total} of {CALL_LIMIT_BYTES / MiB:.0f}: "
                   f"{'ok' if row['fits'] else 'DOES NOT FIT'}")
    if not all(row["fits"] for row in rows):
        sys.exit(1)


@main.command()
@click.option("--python-version", default="3.12", show_default=True)
@click.option("--kit-dir", type=click.Path(path_type=Path, file_okay=False), default=KIT_DIR,
              show_default=True)
@click.option("--rehearsal", is_flag=True, help="The same calls for a CPU rehearsal here.")
def plan(python_version: str, kit_dir: Path, rehearsal: bool) -> None:
    """The session's device calls, in order: command, carry, timeout, expected clock."""
    from tools.gpu_kit.plan import CALLS, PLAN_END_S, SESSION_S, command, schedule  # noqa: PLC0415

    kit = (kit_dir / python_tag(python_version)).relative_to(Path.cwd()) \
        if kit_dir.is_absolute() and kit_dir.is_relative_to(Path.cwd()) \
        else kit_dir / python_tag(python_version)
    sizes = {row["chunk"]: row for row in call_sizes(kit_dir / python_tag(python_version))} \
        if (kit_dir / python_tag(python_version) / "manifest.json").is_file() else {}
    for call, when in zip(CALLS, schedule()):
        folder = f"chunk-{call.chunk:02d}" if call.chunk else None
        size = sizes.get(folder, {}).get("call_bytes")
        click.echo(f"call {when['call']}: minute {when['starts_s'] / 60:.1f} -> "
                   f"{when['ends_s'] / 60:.1f} (at worst {when['worst_end_s'] / 60:.1f}); "
                   f"carries {size / MiB:.1f} MiB" if size else "carries the tree only")
        click.echo(f"  command:   {command(call, str(kit), rehearsal)}")
        click.echo(f"  carry:     {[str(kit / folder)] if folder else []}")
        click.echo(f"  timeout_s: {call.timeout_s}")
        click.echo(f"  measures:  {call.answers}")
    end = schedule()[-1]["ends_s"]
    click.echo(f"plan ends at minute {end / 60:.1f} (limit {PLAN_END_S / 60:.0f}); "
               f"{(SESSION_S - end) / 60:.1f} min left for a repeat")


if __name__ == "__main__":
    main()
