"""PASS/FAIL tables shared by the ops commands, and the exit codes scripts rely on.

Exit codes: 0 every check passed, 1 a check failed, 2 usage or configuration error.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, TextIO

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

Status = Literal["PASS", "FAIL", "SKIP", "INFO"]


class UsageError(Exception):
    """A problem with how the command was called or configured (exit code 2)."""


@dataclass(frozen=True)
class Check:
    """One row of a report: what was checked, the outcome, the evidence and the fix."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"


def passed(name: str, detail: str) -> Check:
    return Check(name, "PASS", detail)


def failed(name: str, detail: str, fix: str = "") -> Check:
    return Check(name, "FAIL", detail, fix)


def skipped(name: str, detail: str) -> Check:
    return Check(name, "SKIP", detail)


def info(name: str, detail: str) -> Check:
    return Check(name, "INFO", detail)


def render(title: str, checks: Iterable[Check]) -> str:
    """A fixed-width table; each failure's fix follows on its own indented line."""
    rows = list(checks)
    width = max([len(c.name) for c in rows] + [5])
    lines = [title, f"{'CHECK'.ljust(width)}  RESULT  DETAIL", f"{'-' * width}  ------  ------"]
    for c in rows:
        lines.append(f"{c.name.ljust(width)}  {c.status.ljust(6)}  {c.detail}")
        if c.fix:
            lines.append(f"{' ' * width}          fix: {c.fix}")
    lines.append(tally(rows))
    return "\n".join(lines)


def tally(checks: list[Check]) -> str:
    """The summary line: a skipped check is not ok, it was not checked."""
    failures, skips = sum(c.failed for c in checks), sum(c.status == "SKIP" for c in checks)
    if not failures and not skips:
        return f"all {len(checks)} ok"
    parts = [f"{len(checks) - failures - skips} ok", f"{failures} failed"] + ([f"{skips} skipped"] if skips else [])
    return ", ".join(parts)


def exit_code(checks: Iterable[Check]) -> int:
    return EXIT_FAILED if any(c.failed for c in checks) else EXIT_OK


def emit(title: str, checks: list[Check], out: TextIO | None = None) -> int:
    """Print the table and return the exit code for it."""
    print(render(title, checks), file=out or sys.stdout)
    return exit_code(checks)
