"""`python -m ops capacity find|use`: arguments to searches and guides, output and exit codes."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from components.platform.config import from_stack_file, read_stack_file
from ops import awsclients
from ops.awsclients import AccessDenied, Sleep, Throttled, error_code, error_message
from ops.capacity import find as capacity_find
from ops.capacity import use as capacity_use
from ops.report import EXIT_FAILED, EXIT_OK, UsageError, emit


def _date(flag: str, value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{flag} {value!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def ec2_factory(session: Any = None) -> Callable[[str], Any]:
    """region -> EC2 client, built once per region."""
    made: dict[str, Any] = {}

    def ec2_for(region: str) -> Any:
        if region not in made:
            (made[region],) = awsclients.clients(region, "ec2", session=session)
        return made[region]

    return ec2_for


def search_from(args: argparse.Namespace) -> tuple[capacity_find.Search, str]:
    """The search for `capacity find` (the stack's type and size unless overridden), and its home region."""
    settings = from_stack_file(args.stack)
    g = settings.gpu_nodes
    itype = args.instance_type or g.instance_type
    if itype not in capacity_find.catalogued_types():
        known = ", ".join(capacity_find.catalogued_types())
        raise UsageError(f"--instance-type {itype} is not a supported GPU instance type; choose one of: {known}")
    count = args.count if args.count is not None else max(g.desired_size, 1)
    if not 1 <= count <= 64:
        raise UsageError(f"--count {count}: a Capacity Block holds 1 to 64 instances")
    problem = capacity_find.duration_problem(args.hours)
    if problem:
        raise UsageError(f"--hours {problem}")
    start, end = _date("--start", args.start), _date("--end", args.end)
    if start and end and end <= start:
        raise UsageError(f"--end {args.end} is not after --start {args.start}")
    return capacity_find.Search(itype, count, args.hours, start, end), settings.region


def find(args: argparse.Namespace, ec2_for: Callable[[str], Any] | None = None, sleep: Sleep = time.sleep) -> int:
    search, home = search_from(args)
    regions = [r.strip() for r in args.regions.split(",") if r.strip()] if args.regions else None
    found = capacity_find.find(search, home, ec2_for or ec2_factory(), sleep, regions)
    print(capacity_find.title(found))
    body = capacity_find.table(found)
    if body:
        print(body)
        print(capacity_find.legend(found))
        capacity_find.save(found, Path(args.save))
        print(f"saved to {args.save}")
    print()
    return emit("regions searched", found.checks)


def _offering(args: argparse.Namespace, instance_type: str) -> capacity_find.Offering:
    saved = capacity_find.load(Path(args.offerings))
    if args.offering_id in saved:
        return saved[args.offering_id]
    if not (args.region and args.zone and args.count):
        raise UsageError(
            f"offering {args.offering_id} is not in {args.offerings}: run `python -m ops capacity find --stack {args.stack}`"
            " first, or give the offering's --region, --zone and --count"
        )
    return capacity_find.Offering(
        offering_id=args.offering_id,
        region=args.region,
        zone=args.zone,
        instance_type=instance_type,
        instance_count=args.count,
        start=None,
        end=None,
        duration_hours=0.0,
        upfront_fee=0.0,
        currency="USD",
    )


def use(
    args: argparse.Namespace,
    ec2_for: Callable[[str], Any] | None = None,
    ask: Callable[[str], str] = input,
    sleep: Sleep = time.sleep,
) -> int:
    settings = from_stack_file(args.stack)  # the stack must be valid before it is changed
    raw = read_stack_file(args.stack)
    offering = _offering(args, settings.gpu_nodes.instance_type)
    reservation_id, bought = args.reservation_id, False
    if args.purchase:
        if not capacity_use.confirmed(offering, ask, sys.stdout):
            print("not bought")
            return EXIT_FAILED
        ec2 = (ec2_for or ec2_factory())(offering.region)
        try:
            reservation_id = capacity_use.purchase(ec2, offering, sleep)
        except AccessDenied as err:
            print(f"access denied to {err.operation}: {err.message}\nfix: grant {err.operation} to this principal")
            return EXIT_FAILED
        except Throttled as err:
            print(f"{err}; nothing was bought, run it again in a minute")
            return EXIT_FAILED
        except ClientError as err:
            print(f"the purchase failed: {error_code(err)}: {error_message(err)}")
            return EXIT_FAILED
        bought = True
    text, valid = capacity_use.guide(args.stack, offering, raw, reservation_id, bought=bought)
    print(text)
    return EXIT_OK if valid else EXIT_FAILED
