"""A start as a graph of steps: what waits on what, and what shares the node's network and disks.

Ground floor: imports nothing of the project. A step starts when every step it waits on has
finished. A fixed step takes its seconds whatever else runs; a transfer step moves its megabytes
at its own rate, slowed by a contention factor while another transfer runs on the same node (the
image pull, the weight copy and the compile-cache download all read the network and write the
instance-store RAID0). The start's length is its longest path, not the sum of its steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Simulation stops here: a graph that has not finished by then waits on itself.
_HORIZON_S = 7 * 86400


@dataclass(frozen=True)
class Step:
    """One step of a start, before it is scheduled."""

    name: str
    lane: str  # the pod or object it runs in: a row of the Gantt chart
    basis: str  # how the figure is computed from the assumptions
    after: tuple[str, ...] = ()
    seconds: float = 0.0  # fixed work
    mb: float = 0.0  # transfer work, megabytes at mb_s
    mb_s: float = 0.0

    @property
    def transfer(self) -> bool:
        return self.mb > 0


@dataclass(frozen=True)
class Phase:
    """A scheduled step: when it starts and ends, in whole seconds from the node joining."""

    name: str
    seconds: int
    basis: str
    start: int = 0
    lane: str = ""
    critical: bool = False

    @property
    def end(self) -> int:
        return self.start + self.seconds


@dataclass(frozen=True)
class Timeline:
    start: str  # the scenario: "new node, S3, warm compile cache", "warm restart", ...
    phases: tuple[Phase, ...]

    @property
    def total(self) -> int:
        """The longest path: from the first step's start to the last step's end."""
        return max((p.end for p in self.phases), default=0)

    def seconds(self, *names: str) -> int:
        """The summed lengths of the named phases (for the timers that guard a stretch of them)."""
        return sum(p.seconds for p in self.phases if p.name in names)

    def phase(self, name: str) -> Phase:
        (found,) = [p for p in self.phases if p.name == name]
        return found

    def has(self, name: str) -> bool:
        return any(p.name == name for p in self.phases)

    @property
    def critical_path(self) -> tuple[Phase, ...]:
        return tuple(p for p in self.phases if p.critical)


def sequence(start: str, phases: tuple[Phase, ...]) -> Timeline:
    """Phases one after another (a Job's steps), each on the critical path."""
    placed, at = [], 0
    for p in phases:
        placed.append(Phase(p.name, p.seconds, p.basis, at, p.lane, True))
        at += p.seconds
    return Timeline(start, tuple(placed))


def schedule(start: str, steps: list[Step], contention: float) -> Timeline:
    """Run the graph: fixed steps take their seconds; transfers that overlap slow one another by
    `contention` (a measured ratio, see Assumptions.contention)."""
    by_name = {s.name: s for s in steps}
    if len(by_name) != len(steps):
        raise ValueError(f"{start}: two steps share a name")
    for s in steps:
        missing = [d for d in s.after if d not in by_name]
        if missing:
            raise ValueError(f"{start}: step {s.name!r} waits on unknown {missing}")
    began: dict[str, float] = {}
    ended: dict[str, float] = {}
    left: dict[str, float] = {}  # remaining seconds (fixed) or megabytes (transfer)
    now = 0.0
    while len(ended) < len(steps):
        for s in steps:
            if s.name not in began and all(d in ended for d in s.after):
                began[s.name] = now
                left[s.name] = s.mb if s.transfer else s.seconds
        running = [s for s in steps if s.name in began and s.name not in ended]
        if not running:
            raise ValueError(f"{start}: steps wait on one another: {sorted(set(by_name) - set(ended))}")
        transfers = sum(s.transfer for s in running)
        slow = contention if transfers > 1 else 1.0

        def rate(s: Step, slow: float = slow) -> float:
            return s.mb_s / slow if s.transfer else 1.0

        step_s = min(left[s.name] / rate(s) for s in running)
        now += step_s
        if now > _HORIZON_S:
            raise ValueError(f"{start}: does not finish within {_HORIZON_S} s")
        for s in running:
            left[s.name] -= step_s * rate(s)
            if left[s.name] <= 1e-9:
                ended[s.name] = now
    critical = _critical(steps, ended)
    phases = []
    for s in steps:
        first, last = math.ceil(began[s.name] - 1e-9), math.ceil(ended[s.name] - 1e-9)
        phases.append(Phase(s.name, last - first, s.basis, first, s.lane, s.name in critical))
    return Timeline(start, tuple(phases))


def _critical(steps: list[Step], ended: dict[str, float]) -> set[str]:
    """Walk back from the step that ends last through the dependency that ended last."""
    by_name = {s.name: s for s in steps}
    name = max(steps, key=lambda s: (ended[s.name], -steps.index(s))).name
    path = {name}
    while by_name[name].after:
        name = max(by_name[name].after, key=lambda d: ended[d])
        path.add(name)
    return path
