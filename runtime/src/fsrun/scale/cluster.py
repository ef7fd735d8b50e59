"""The cluster side of `fsrun DIR --ray`: which actors fit on which node, and a start-up that
cannot hang in silence.

Actors are sized from each node, never from the cluster's totals (a 2-CPU actor fits no 1-CPU
node, however many of them there are) and pinned to the node they were planned for, so every
node that can hold one gets its share. While actors wait to start, the driver says every
NOTICE_EVERY_S what Ray is waiting for; past the start-up limit it stops with one line. A
worker that cannot start (fsrun missing on its node, a package it cannot read) is reported as
one line naming the node.

Ray is never imported here: the caller passes the `ray` module in.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Callable

from fsrun.errors import FsError, UsageError

# CPUs one actor takes on a cluster without GPUs when --ray-cpus is not given (fewer on a node
# that has fewer).
DEFAULT_ACTOR_CPUS = 4
# Seconds between "still waiting" lines while actors start, and the default start-up limit.
NOTICE_EVERY_S = 10.0
DEFAULT_STARTUP_TIMEOUT_S = 180.0


class ClusterStartError(FsError):
    """The workers did not start: one line says which node and why (exit 1)."""


@dataclass(frozen=True)
class Node:
    node_id: str  # Ray's node id
    address: str  # the node's IP address, as `ray status` shows it
    cpus: float  # CPUs the node declares
    gpus: float  # GPUs the node declares


@dataclass(frozen=True)
class Slot:
    node: Node  # where the actor is pinned
    options: dict  # its resources: num_cpus, and num_gpus on GPU nodes


def alive_nodes(ray: Any) -> list[Node]:
    nodes = [Node(n["NodeID"], str(n.get("NodeManagerAddress", "?")),
                  float(n.get("Resources", {}).get("CPU", 0)),
                  float(n.get("Resources", {}).get("GPU", 0)))
             for n in ray.nodes() if n.get("Alive")]
    return sorted(nodes, key=lambda n: (n.address, n.node_id))


def plan_slots(nodes: list[Node], jobs: int, actor_cpus: int | None = None) -> list[Slot]:
    """Up to `jobs` actor places that each fit their node, spread over the nodes in turn. A GPU
    node holds one actor per GPU; a CPU node one per `actor_cpus` CPUs (default: up to
    DEFAULT_ACTOR_CPUS, fewer on a smaller node). UsageError when no node can hold one."""
    per_node: list[list[Slot]] = []
    for node in nodes:
        if node.gpus >= 1:
            gpus = int(node.gpus)
            cpus = min(actor_cpus or DEFAULT_ACTOR_CPUS, int(node.cpus // gpus))
            options = {"num_gpus": 1, "num_cpus": cpus} if cpus >= 1 else {"num_gpus": 1,
                                                                           "num_cpus": 0}
            per_node.append([Slot(node, options)] * gpus)
            continue
        want = actor_cpus or min(DEFAULT_ACTOR_CPUS, int(node.cpus))
        count = int(node.cpus // want) if want >= 1 else 0
        per_node.append([Slot(node, {"num_cpus": want})] * count)
    if not any(per_node):
        raise UsageError(_too_small(nodes, actor_cpus))
    slots: list[Slot] = []
    while len(slots) < jobs and any(per_node):
        for places in per_node:  # one per node in turn: small runs still use every node
            if places and len(slots) < jobs:
                slots.append(places.pop())
    return slots


def _too_small(nodes: list[Node], actor_cpus: int | None) -> str:
    described = ", ".join(f"{n.address} {n.cpus:g} CPU" for n in nodes) or "none alive"
    largest = max((int(n.cpus) for n in nodes), default=0)
    if actor_cpus and largest >= 1:
        return (f"no Ray node can hold one worker of {actor_cpus} CPUs (nodes: {described}); "
                f"pass --ray-cpus {largest} or add a node with {actor_cpus} CPUs")
    return (f"no Ray node offers a CPU or GPU for a worker (nodes: {described}); start the "
            "nodes with `ray start --num-cpus N`")


def describe(slot: Slot) -> str:
    """'2 CPU' or '1 GPU, 4 CPU'."""
    parts = [f"{slot.options['num_gpus']} GPU"] if slot.options.get("num_gpus") else []
    return ", ".join(parts + [f"{slot.options.get('num_cpus', 1)} CPU"])


def wait_until_started(ray: Any, started: dict[Any, Slot], timeout_s: float,
                       say: Callable[[str], None], every_s: float = NOTICE_EVERY_S
                       ) -> dict[Any, tuple[str, FsError | None] | None]:
    """ready-ref -> None (the worker is up) or (a one-line reason it is not, the fsrun error
    the worker met, if any), for every ref in `started`, waiting at most timeout_s; says every
    every_s what it is still waiting for. ClusterStartError when the limit passes with workers
    still waiting."""
    began = last_notice = time.monotonic()
    pending, outcome = list(started), {}
    while pending:
        left = began + timeout_s - time.monotonic()
        if left <= 0:
            raise ClusterStartError(
                f"ray: {len(pending)} of {len(started)} workers did not start within "
                f"{timeout_s:g} s ({_waiting_for(ray, [started[r] for r in pending])}); see "
                "`ray status`, or pass --ray-cpus / --ray-timeout")
        done, pending = ray.wait(pending, num_returns=len(pending),
                                 timeout=min(every_s, left, 1.0))
        for ref in done:
            outcome[ref] = start_error(ray, ref, started[ref])
        if pending and time.monotonic() - last_notice >= every_s:
            last_notice = time.monotonic()
            say(f"ray: waiting for {len(pending)} of {len(started)} workers to start "
                f"({_waiting_for(ray, [started[r] for r in pending])}, "
                f"{time.monotonic() - began:.0f} s of {timeout_s:g})")
    return outcome


def start_error(ray: Any, ref: Any, slot: Slot) -> tuple[str, FsError | None] | None:
    """None when the worker behind ref started; else (one line naming its node and the cause,
    the fsrun error it met or None when it died)."""
    try:
        error = ray.get(ref)
    except ray.exceptions.RayError as exc:
        return f"the worker on {slot.node.address} could not start: {root_cause(exc)}", None
    if error is None:
        return None
    return f"the worker on {slot.node.address} cannot run: {error}", error


def root_cause(exc: BaseException) -> str:
    """The last `SomeError: message` line of a Ray error (the exception raised on the node),
    else its first line."""
    text = str(exc)
    causes = re.findall(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception)\b:.*)$", text, flags=re.M)
    if causes:
        return causes[-1].strip()[:300]
    lines = text.strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]


def _waiting_for(ray: Any, slots: list[Slot]) -> str:
    """What the waiting workers ask for and what the nodes have free, in words."""
    asked: dict[str, int] = {}
    for slot in slots:
        key = f"{describe(slot)} on {slot.node.address}"
        asked[key] = asked.get(key, 0) + 1
    wanted = ", ".join(f"{n} x {k}" for k, n in asked.items())
    try:
        free, total = ray.available_resources(), ray.cluster_resources()
        nodes = len([n for n in ray.nodes() if n.get("Alive")])
        have = (f"{nodes} node{'' if nodes == 1 else 's'} alive, CPU "
                f"{free.get('CPU', 0):g}/{total.get('CPU', 0):g} free")
        if total.get("GPU"):
            have += f", GPU {free.get('GPU', 0):g}/{total.get('GPU', 0):g} free"
    except Exception:  # noqa: BLE001 - the notice must not fail the wait it describes
        have = "cluster state unreadable"
    return f"pending: {wanted}; {have}"
