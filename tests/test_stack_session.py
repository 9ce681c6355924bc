"""The ops commands act as the stack's own AWS identity (`aws:profile`, `aws:assumeRoles`)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import Stubber

from components.settings import stack as settings_module
from ops import preflight
from ops.__main__ import main as ops_main
from ops.awsclients import CredentialsMissing, stack_session

ROLE = "arn:aws:iam::123456789012:role/ml-deployer"


@pytest.fixture
def profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A machine with one named profile and no ambient credentials."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "config").write_text("[profile ml-prod]\nregion = us-east-2\n")
    (tmp_path / "credentials").write_text(
        "[ml-prod]\naws_access_key_id = AKIAPROFILEKEY000001\naws_secret_access_key = secret\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    return tmp_path


def test_the_stack_profile_is_the_identity_the_commands_use(profiles: Path) -> None:
    session = stack_session("ml-prod", None)
    assert session.profile_name == "ml-prod"
    assert session.get_credentials().access_key == "AKIAPROFILEKEY000001"


def test_a_profile_this_machine_lacks_is_a_credentials_error_naming_it(profiles: Path) -> None:
    with pytest.raises(CredentialsMissing, match="aws:profile 'ml-staging'"):
        stack_session("ml-staging", None)


def _sts_with(response: dict[str, Any] | None, error: str | None = None) -> Any:
    sts = boto3.client("sts", region_name="us-east-2", aws_access_key_id="a", aws_secret_access_key="b")
    stub = Stubber(sts)
    expected = {"RoleArn": ROLE, "RoleSessionName": "minimax-vllm-ops"}
    if error:
        stub.add_client_error("assume_role", service_error_code=error, expected_params=expected)
    else:
        stub.add_response("assume_role", response, expected)
    stub.activate()
    return sts


def test_the_stack_role_is_assumed_and_its_credentials_used(profiles: Path) -> None:
    creds = {
        "AccessKeyId": "ASIAROLEKEY000000001",
        "SecretAccessKey": "s" * 40,
        "SessionToken": "token",
        "Expiration": dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
    }
    session = stack_session("ml-prod", ROLE, sts=_sts_with({"Credentials": creds}))
    assert session.get_credentials().access_key == "ASIAROLEKEY000000001"


def test_a_role_that_cannot_be_assumed_is_a_credentials_error_naming_it(profiles: Path) -> None:
    with pytest.raises(CredentialsMissing, match=f"cannot assume the stack's role {ROLE}"):
        stack_session("ml-prod", ROLE, sts=_sts_with(None, error="AccessDenied"))


def test_preflight_runs_as_the_stack_profile(profiles: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stack_file = tmp_path / "Pulumi.prod-8gpu.yaml"
    shutil.copy(settings_module.STACKS_DIR / "Pulumi.prod-8gpu.yaml", stack_file)
    doc = yaml.safe_load(stack_file.read_text())
    doc["config"]["aws:profile"] = "ml-prod"
    stack_file.write_text(yaml.safe_dump(doc))
    monkeypatch.setattr(settings_module, "STACKS_DIR", tmp_path)
    seen: dict[str, Any] = {}

    def fake_main(settings: Any, session: Any = None, *args: Any, **kwargs: Any) -> tuple[str, list]:
        seen["profile"] = session.profile_name
        return "t", []

    monkeypatch.setattr(preflight, "main", fake_main)
    assert ops_main(["preflight", "--stack", "prod-8gpu"]) == 0
    assert seen["profile"] == "ml-prod"
