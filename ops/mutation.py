"""`make mutation`: plant each listed one-line bug and check that the fast test tier notices.

The list is ops/mutants.toml: file, the exact original snippet, its replacement and what the
bug would break. Each mutant is applied alone to a temporary copy of the tree (never the
working tree) and the fast tier runs there (pytest without the `vllm` and `checkov` markers,
`-x -q`): first the mutant's own `tests` for a quick verdict, then, only if they pass, the
whole tier. Outcomes:

- killed: a test failed, as it should;
- survived: every test passed; the list must then either gain a test or mark the mutant
  `equivalent = "<why the change cannot matter>"`;
- stale: the snippet is no longer in its file exactly once, so the list needs maintenance
  (reported as an error, never skipped silently).

Exit codes: 0 every mutant killed or explained, 1 an unexplained survivor (or an `equivalent`
note that a test now contradicts), 2 a stale entry or a tree whose tests fail unmutated.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS_FILE = Path(__file__).resolve().parent / "mutants.toml"
# The tests of this list itself are left out: in a mutated copy the mutant's own snippet is gone,
# so they would "kill" every mutant.
FAST_TIER = ("-m", "not vllm and not checkov", "-x", "-q", "-p", "no:cacheprovider", "--ignore=tests/test_mutation.py")
TIMEOUT_S = 900
# Never copied: virtualenvs, caches, git's own data and rendered plans.
SKIP = {".git", ".venv", ".venv-checkov", "plan-out", "__pycache__", ".pytest_cache", ".ruff_cache"}


@dataclass(frozen=True)
class Mutant:
    id: str
    file: str
    original: str
    replacement: str
    breaks: str
    tests: tuple[str, ...] = ()
    equivalent: str | None = None


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    status: str  # killed | survived | equivalent | contradicted | stale
    seconds: float
    detail: str = ""

    @property
    def bad(self) -> bool:
        return self.status in ("survived", "contradicted", "stale")


def load(path: Path = MUTANTS_FILE) -> list[Mutant]:
    doc = tomllib.loads(path.read_text())
    mutants = [
        Mutant(
            id=m["id"],
            file=m["file"],
            original=m["original"],
            replacement=m["replacement"],
            breaks=m["breaks"],
            tests=tuple(m.get("tests", ())),
            equivalent=m.get("equivalent"),
        )
        for m in doc["mutant"]
    ]
    ids = [m.id for m in mutants]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"{path}: duplicate mutant ids {duplicates}")
    return mutants


def staleness(m: Mutant, root: Path = ROOT) -> str | None:
    """Why a mutant cannot be applied as listed, or None."""
    path = root / m.file
    if not path.is_file():
        return f"{m.file} does not exist"
    count = path.read_text().count(m.original)
    if count != 1:
        where = "not found" if count == 0 else f"found {count} times (make it unique)"
        return f"snippet {where} in {m.file}: {m.original!r}"
    if m.original == m.replacement:
        return "replacement equals the original"
    return None


def copy_tree(root: Path, dest: Path) -> Path:
    """The tree as it is (tracked and new files), without caches, so every run imports the sources."""
    shutil.copytree(root, dest, ignore=lambda _d, names: [n for n in names if n in SKIP or n.endswith(".pyc")])
    return dest


def pytest(cwd: Path, targets: tuple[str, ...] = ()) -> tuple[int, str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "VLLM_TARGET_DEVICE": "cpu"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", *FAST_TIER, *targets],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {TIMEOUT_S} s"
    return done.returncode, done.stdout + done.stderr


def first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" - ")[0]
    tail = [line for line in output.splitlines() if line.strip()]
    return tail[-1] if tail else "no output"


def run_mutant(m: Mutant, tree: Path) -> Outcome:
    """Apply one mutant to `tree`, run the tests, and put the file back."""
    start = time.monotonic()
    path = tree / m.file
    source = path.read_text()
    path.write_text(source.replace(m.original, m.replacement, 1))
    try:
        code, out = pytest(tree, m.tests) if m.tests else (0, "")
        if code == 0:
            code, out = pytest(tree)
    finally:
        path.write_text(source)
    seconds = time.monotonic() - start
    if code == 5:  # pytest: no tests collected
        return Outcome(m, "stale", seconds, f"its tests {list(m.tests)} collect nothing")
    killed = code != 0
    if m.equivalent:
        status = "contradicted" if killed else "equivalent"
        detail = f"killed by {first_failure(out)}: remove the equivalent note" if killed else m.equivalent
        return Outcome(m, status, seconds, detail)
    return Outcome(m, "killed" if killed else "survived", seconds, first_failure(out) if killed else m.breaks)


def run(mutants: list[Mutant], jobs: int, baseline: bool, report=print) -> list[Outcome]:
    outcomes = [Outcome(m, "stale", 0.0, why) for m in mutants if (why := staleness(m))]
    live = [m for m in mutants if not staleness(m)]
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        trees: queue.Queue[Path] = queue.Queue()
        for i in range(max(1, min(jobs, len(live) or 1))):
            trees.put(copy_tree(ROOT, Path(tmp) / f"tree{i}"))
        if baseline:
            report("baseline: the fast tier on the unmutated copy ...")
            code, out = pytest(trees.queue[0])
            if code != 0:
                report(f"baseline fails, so no mutant can be judged: {first_failure(out)}")
                return [*outcomes, *(Outcome(m, "stale", 0.0, "baseline fails") for m in live)]

        def one(m: Mutant) -> Outcome:
            tree = trees.get()
            try:
                return run_mutant(m, tree)
            finally:
                trees.put(tree)

        with concurrent.futures.ThreadPoolExecutor(max_workers=trees.qsize()) as pool:
            for outcome in pool.map(one, live):
                report(line(outcome))
                outcomes.append(outcome)
    return outcomes


def line(o: Outcome) -> str:
    return f"{o.status.upper():<12} {o.mutant.id:<34} {o.seconds:6.1f}s  {o.detail}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ops.mutation", description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=2, help="mutants run at once, each in its own copy (default 2)")
    p.add_argument("--only", nargs="*", default=(), metavar="ID", help="run only these mutants")
    p.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the fast tier")
    p.add_argument("--check", action="store_true", help="only check that every snippet is still in its file")
    args = p.parse_args(argv)
    mutants = load()
    unknown = sorted(set(args.only) - {m.id for m in mutants})
    if unknown:
        print(f"unknown mutant ids: {unknown}", file=sys.stderr)
        return 2
    if args.only:
        mutants = [m for m in mutants if m.id in args.only]
    if args.check:
        stale = [(m, why) for m in mutants if (why := staleness(m))]
        for m, why in stale:
            print(f"STALE        {m.id:<34} {why}")
        print(f"{len(mutants)} mutants, {len(stale)} stale")
        return 2 if stale else 0
    start = time.monotonic()
    outcomes = run(mutants, args.jobs, not args.no_baseline)
    for o in outcomes:
        if o.status == "stale":
            print(line(o))
    counts = {s: sum(o.status == s for o in outcomes) for s in ("killed", "equivalent", "survived", "contradicted")}
    stale = sum(o.status == "stale" for o in outcomes)
    print(
        f"{len(outcomes)} mutants: {counts['killed']} killed, {counts['equivalent']} equivalent (explained), "
        f"{counts['survived']} survived, {counts['contradicted']} contradicted, {stale} stale; "
        f"{time.monotonic() - start:.0f} s with {args.jobs} job(s)"
    )
    if stale:
        return 2
    return 1 if any(o.bad for o in outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
