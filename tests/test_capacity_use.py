"""`ops capacity use`: the printed commands, applied to a copy of a stack file, select the block.

`pulumi` is not installed here, so `pulumi config set|rm [--path]` is interpreted by the small
function below, written from the CLI's documented behaviour: with --path, "true"/"false"
become booleans and integers numbers, other values strings; top-level values stay strings.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import Stubber

from components.platform import config
from components.settings import stack as settings
from ops.__main__ import main as ops_main
from ops.capacity import cli as capacity_cli
from ops.capacity import find as capacity_find
from ops.capacity import use as capacity_use
from ops.offline.engine import render

UTC = dt.UTC
STACK = "prod-8gpu"
RESERVATION = "cr-0a1b2c3d4e5f67890"
OFFERING = capacity_find.Offering(
    offering_id="cb-0123456789abcdef0",
    region="us-west-2",
    zone="us-west-2b",
    instance_type="p5.48xlarge",
    instance_count=1,
    start=dt.datetime(2026, 12, 2, 11, 30, tzinfo=UTC),
    end=dt.datetime(2026, 12, 4, 11, 30, tzinfo=UTC),
    duration_hours=48.0,
    upfront_fee=4350.0,
    currency="USD",
)


@pytest.fixture(autouse=True)
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


# --- a faithful-enough `pulumi config` ---------------------------------------------------


def _path(key: str) -> list[str | int]:
    """'gpuNodes.availabilityZones[0]' -> ['gpuNodes', 'availabilityZones', 0]."""
    parts: list[str | int] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", key):
        parts.append(int(index) if index else name)
    return parts


def _typed(value: str) -> Any:
    if value in ("true", "false"):
        return value == "true"
    return int(value) if re.fullmatch(r"-?\d+", value) else value


def pulumi_config(line: str, stacks_dir: Path, project: str = "minimax-vllm") -> None:
    """Apply one `pulumi config set|rm [--stack S] [--path] key [value]` to stacks_dir/Pulumi.S.yaml."""
    argv = shlex.split(line)
    assert argv[:2] == ["pulumi", "config"] and argv[2] in ("set", "rm"), line
    verb, stack, use_path, positional = argv[2], None, False, []
    rest = iter(argv[3:])
    for arg in rest:
        if arg == "--path":
            use_path = True
        elif arg in ("--stack", "-s"):
            stack = next(rest)
        elif arg.startswith("-"):
            raise AssertionError(f"flag not interpreted: {arg}")
        else:
            positional.append(arg)
    assert stack, f"every command names its stack: {line}"
    key = positional[0]
    assert len(positional) == (2 if verb == "set" else 1), line
    file = stacks_dir / f"Pulumi.{stack}.yaml"
    doc = yaml.safe_load(file.read_text())
    cfg = doc.setdefault("config", {})
    parts: list[str | int] = _path(key) if use_path else [key]
    top = str(parts[0])
    parts[0] = top if ":" in top else f"{project}:{top}"
    if len(parts) == 1:
        if verb == "set":
            cfg[parts[0]] = positional[1]  # top-level values are always strings
        else:
            cfg.pop(parts[0], None)
    else:
        node: Any = cfg
        for part, following in zip(parts[:-1], parts[1:], strict=True):
            empty: Any = [] if isinstance(following, int) else {}
            if isinstance(node, list):
                node = node[part]
                continue
            if verb == "rm" and part not in node:
                node = None
                break
            node = node.setdefault(part, empty)
        leaf = parts[-1]
        if verb == "set":
            if isinstance(leaf, int):
                assert leaf <= len(node), f"index {leaf} past the end of {node}"
                node[leaf : leaf + 1] = [_typed(positional[1])]
            else:
                node[leaf] = _typed(positional[1])
        elif node is not None:
            if isinstance(leaf, int):
                del node[leaf]
            else:
                node.pop(leaf, None)
    file.write_text(yaml.safe_dump(doc, sort_keys=False))


def config_commands(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("pulumi config ")]


def apply_to_copy(text: str, tmp_path: Path, stack: str = STACK) -> Path:
    shutil.copy(settings.STACKS_DIR / f"Pulumi.{stack}.yaml", tmp_path / f"Pulumi.{stack}.yaml")
    for line in config_commands(text):
        pulumi_config(line, tmp_path)
    return tmp_path


def settings_of(stacks_dir: Path, stack: str = STACK) -> config.Settings:
    raw, region = config.split_stack_config(config.read_stack_file(stack, stacks_dir))
    return config.parse(raw, stack, region)


def test_the_interpreter_follows_pulumis_path_rules(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.x.yaml").write_text("config:\n  minimax-vllm:gpuNodes:\n    availabilityZones: [a, b]\n")
    for line in (
        "pulumi config set --stack x aws:region 12",
        "pulumi config set --stack x --path gpuNodes.minSize 2",
        "pulumi config set --stack x --path gpuNodes.flag true",
        "pulumi config rm --stack x --path gpuNodes.availabilityZones",
        "pulumi config set --stack x --path 'gpuNodes.availabilityZones[0]' c",
        "pulumi config rm --stack x --path network.availabilityZones",
    ):
        pulumi_config(line, tmp_path)
    cfg = yaml.safe_load((tmp_path / "Pulumi.x.yaml").read_text())["config"]
    assert cfg == {
        "minimax-vllm:gpuNodes": {"minSize": 2, "flag": True, "availabilityZones": ["c"]},
        "aws:region": "12",
    }


# --- the printed commands ------------------------------------------------------------------


def test_commands_are_exact_and_nothing_is_bought_by_default() -> None:
    raw = config.read_stack_file(STACK)
    text, valid = capacity_use.guide(STACK, OFFERING, raw, RESERVATION)
    assert valid
    assert (
        "   aws ec2 purchase-capacity-block --capacity-block-offering-id cb-0123456789abcdef0"
        " --instance-platform Linux/UNIX --region us-west-2" in text.splitlines()
    )
    assert config_commands(text) == [
        "pulumi config set --stack prod-8gpu aws:region us-west-2",
        "pulumi config set --stack prod-8gpu --path gpuNodes.capacityType CAPACITY_BLOCK",
        f"pulumi config set --stack prod-8gpu --path gpuNodes.capacityReservationId {RESERVATION}",
        "pulumi config rm --stack prod-8gpu --path gpuNodes.availabilityZones",
        "pulumi config set --stack prod-8gpu --path 'gpuNodes.availabilityZones[0]' us-west-2b",
        "pulumi config set --stack prod-8gpu --path gpuNodes.minSize 1",
        "pulumi config set --stack prod-8gpu --path gpuNodes.desiredSize 1",
        "pulumi config set --stack prod-8gpu --path gpuNodes.maxSize 1",
    ]
    assert (
        'aws eks update-nodegroup-config --cluster-name "$(pulumi stack output clusterName --stack prod-8gpu)"'
        ' --nodegroup-name "$(pulumi stack output gpuNodeGroupName --stack prod-8gpu)"'
        " --scaling-config minSize=0,maxSize=1,desiredSize=0 --region us-west-2" in text
    )


def test_applied_commands_render_a_node_group_on_the_block(tmp_path: Path) -> None:
    text, _ = capacity_use.guide(STACK, OFFERING, config.read_stack_file(STACK), RESERVATION)
    r = render(STACK, stacks_dir=apply_to_copy(text, tmp_path))
    gpu = r.one("minimax-vllm:aws:GpuNodeGroup")
    (group,) = [g for g in r.of_type("aws:eks/nodeGroup:NodeGroup") if g.parent == gpu.urn]
    (template,) = [t for t in r.of_type("aws:ec2/launchTemplate:LaunchTemplate") if t.parent == gpu.urn]
    assert group.inputs["capacityType"] == "CAPACITY_BLOCK"
    assert group.inputs["scalingConfig"] == {"minSize": 1, "desiredSize": 1, "maxSize": 1}
    assert template.inputs["instanceMarketOptions"] == {"marketType": "capacity-block"}
    assert template.inputs["instanceType"] == "p5.48xlarge"
    assert template.inputs["capacityReservationSpecification"] == {
        "capacityReservationTarget": {"capacityReservationId": RESERVATION}
    }
    subnets = {s.id: s for s in r.of_type("aws:ec2/subnet:Subnet")}
    assert [subnets[i].inputs["availabilityZone"] for i in group.inputs["subnetIds"]] == ["us-west-2b"]
    assert r.outputs["region"] == "us-west-2"
    # The scale-to-zero command reads these stack outputs.
    assert {"clusterName", "gpuNodeGroupName"} <= set(r.outputs)


def test_a_stack_with_two_gpu_zones_keeps_its_network_zones_and_adds_the_blocks(tmp_path: Path) -> None:
    raw = config.read_stack_file(STACK)
    raw["minimax-vllm:gpuNodes"] = {**raw["minimax-vllm:gpuNodes"], "availabilityZones": ["us-west-2a", "us-west-2c"]}
    raw["minimax-vllm:network"] = {**raw["minimax-vllm:network"], "availabilityZones": ["us-west-2a", "us-west-2c"]}
    raw["aws:region"] = "us-west-2"
    (tmp_path / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump({"config": raw}))
    block = capacity_find.Offering(**{**OFFERING.__dict__, "instance_count": 2})
    text, valid = capacity_use.guide(STACK, block, raw, RESERVATION)
    assert valid
    assert "pulumi config set --stack prod-8gpu --path 'network.availabilityZones[2]' us-west-2b" in config_commands(
        text
    )
    for line in config_commands(text):
        pulumi_config(line, tmp_path)
    g = settings_of(tmp_path).gpu_nodes
    assert g.availability_zones == ("us-west-2b",)
    assert settings_of(tmp_path).network.availability_zones == ("us-west-2a", "us-west-2c", "us-west-2b")
    assert (g.min_size, g.desired_size, g.max_size) == (2, 2, 2)


def test_without_a_reservation_id_the_placeholder_cannot_reach_pulumi_up(tmp_path: Path) -> None:
    text, valid = capacity_use.guide(STACK, OFFERING, config.read_stack_file(STACK), None)
    assert valid  # the rest of the settings are fine
    assert "CapacityReservation.CapacityReservationId" in text and "describe-capacity-reservations" in text
    assert capacity_use.RESERVATION_PLACEHOLDER in text
    with pytest.raises(config.SettingsError, match="gpuNodes.capacityReservationId"):
        settings_of(apply_to_copy(text, tmp_path))


def test_a_block_too_small_for_the_replicas_is_reported_before_pulumi_up() -> None:
    raw = config.read_stack_file(STACK)
    raw["minimax-vllm:serving"] = {**raw["minimax-vllm:serving"], "replicas": 2}
    raw["minimax-vllm:gpuNodes"] = {**raw["minimax-vllm:gpuNodes"], "maxSize": 2, "desiredSize": 2}
    text, valid = capacity_use.guide(STACK, OFFERING, raw, RESERVATION)
    assert not valid
    assert "would be rejected" in text and "serving.replicas" in text


# --- the CLI, the saved offerings and --purchase ----------------------------------------------


def use_args(tmp_path: Path, **extra: Any) -> argparse.Namespace:
    saved = tmp_path / "offerings.json"
    saved.write_text(json.dumps({"offerings": [OFFERING.to_json()]}))
    base = {
        "stack": STACK,
        "offering_id": OFFERING.offering_id,
        "offerings": str(saved),
        "reservation_id": None,
        "region": None,
        "zone": None,
        "count": None,
        "purchase": False,
    }
    return argparse.Namespace(**{**base, **extra})


def stubbed(region: str = "us-west-2") -> tuple[Any, Stubber]:
    client = boto3.client("ec2", region_name=region)
    stub = Stubber(client)
    return client, stub


def test_purchase_needs_the_offering_id_typed_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ec2, stub = stubbed()
    stub.activate()  # nothing queued: any call would fail the test
    code = capacity_cli.use(use_args(tmp_path, purchase=True), lambda _: ec2, ask=lambda _: "yes")
    assert code == 1
    out = capsys.readouterr().out
    assert "4,350.00 USD" in out and "not bought" in out
    stub.assert_no_pending_responses()


def test_confirmed_purchase_buys_once_and_configures_the_reservation_it_returns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ec2, stub = stubbed()
    stub.add_response(
        "purchase_capacity_block",
        {"CapacityReservation": {"CapacityReservationId": RESERVATION, "AvailabilityZone": "us-west-2b"}},
        {"CapacityBlockOfferingId": OFFERING.offering_id, "InstancePlatform": "Linux/UNIX"},
    )
    stub.activate()
    code = capacity_cli.use(use_args(tmp_path, purchase=True), lambda _: ec2, ask=lambda _: OFFERING.offering_id)
    stub.assert_no_pending_responses()
    assert code == 0
    out = capsys.readouterr().out
    assert f"Bought: capacity reservation {RESERVATION}" in out
    assert "aws ec2 purchase-capacity-block" not in out
    assert f"pulumi config set --stack prod-8gpu --path gpuNodes.capacityReservationId {RESERVATION}" in out


def test_purchase_denied_names_the_action(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ec2, stub = stubbed()
    stub.add_client_error("purchase_capacity_block", "UnauthorizedOperation", "not allowed")
    stub.activate()
    code = capacity_cli.use(use_args(tmp_path, purchase=True), lambda _: ec2, ask=lambda _: OFFERING.offering_id)
    assert code == 1 and "ec2:PurchaseCapacityBlock" in capsys.readouterr().out


def test_an_offering_not_saved_needs_its_region_zone_and_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = use_args(tmp_path, offering_id="cb-00000000000000099")
    with pytest.raises(capacity_cli.UsageError, match="--region, --zone and --count"):
        capacity_cli.use(args)
    args = use_args(tmp_path, offering_id="cb-00000000000000099", region="us-east-2", zone="us-east-2c", count=1)
    assert capacity_cli.use(args) == 0
    out = capsys.readouterr().out
    assert "pulumi config set --stack prod-8gpu --path 'gpuNodes.availabilityZones[0]' us-east-2c" in out
    assert "the fee listed by `aws ec2 describe-capacity-block-offerings`" in out


def test_cli_dispatches_use_and_exits_2_on_an_unknown_offering(tmp_path: Path) -> None:
    missing = str(tmp_path / "none.json")
    assert ops_main(["capacity", "use", "cb-00000000000000099", "--offerings", missing]) == 2
