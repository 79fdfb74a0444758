"""The spec's `notifications` at `rollout policy validate`: a malformed URL or a secret file
that cannot be read is refused with exit 3 and the field's path, and no secret is shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rollout.cli import app
from rollout.notify import build_notifier
from rollout.spec import SpecError, load_spec
from tests.support.unreached_spec import write_unreached_spec

runner = CliRunner()
SECRET_URL = "https://hooks.slack.com/services/T1/B2/url-secret-never-print-me"


def spec_file(tmp_path: Path, notifications: dict[str, Any]) -> Path:
    return write_unreached_spec(tmp_path, notifications=notifications)


def validate(path: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["policy", "validate", str(path)])
    return result.exit_code, result.output


def test_a_valid_notifications_section_validates(tmp_path: Path) -> None:
    (tmp_path / "hmac").write_text("s3cret\n")
    (tmp_path / "slack").write_text(SECRET_URL + "\n")
    path = spec_file(
        tmp_path,
        {
            "webhooks": [
                {"url": "https://hooks.example.com/rollout", "secretFile": str(tmp_path / "hmac")}
            ],
            "slack": [{"urlFile": str(tmp_path / "slack"), "events": ["rolled_back", "paused"]}],
        },
    )
    code, output = validate(path)
    assert code == 0 and ": valid" in output
    notifier = build_notifier(load_spec(path)[0].spec.notifications)
    assert notifier is not None
    notifier.close()


@pytest.mark.parametrize(
    ("notifications", "field", "says"),
    [
        ({"webhooks": [{"url": "hooks.example.com/x"}]}, "webhooks.0.url", "http:// or https://"),
        ({"webhooks": [{"url": "https://"}]}, "webhooks.0.url", "no host"),
        ({"webhooks": [{"url": "http://h:99999/"}]}, "webhooks.0.url", "port"),
        ({"slack": [{"url": "slack.com/x"}]}, "slack.0.url", "http:// or https://"),
        ({"slack": [{}]}, "slack.0", "set url or urlFile"),
        ({"webhooks": [{"url": "http://h", "events": ["deployed"]}]}, "webhooks.0.events.0", ""),
    ],
)
def test_a_malformed_destination_exits_3_naming_the_field(
    tmp_path: Path, notifications: dict[str, Any], field: str, says: str
) -> None:
    code, output = validate(spec_file(tmp_path, notifications))
    assert code == 3
    assert f"spec.notifications.{field}: " in output and says in output, output


@pytest.mark.parametrize("problem", ["missing", "directory", "empty", "binary"])
def test_a_secret_file_that_cannot_be_read_exits_3_naming_the_field(
    tmp_path: Path, problem: str
) -> None:
    secret = tmp_path / "hmac"
    if problem == "directory":
        secret.mkdir()
    elif problem == "empty":
        secret.write_text("\n")
    elif problem == "binary":
        secret.write_bytes(b"\xff\xfe-binary-secret-never-print-me")
    code, output = validate(
        spec_file(tmp_path, {"webhooks": [{"url": "http://h/x", "secretFile": str(secret)}]})
    )
    assert code == 3
    assert "spec.notifications.webhooks.0.secretFile: " in output, output
    assert "never-print-me" not in output


def test_a_slack_url_file_without_a_url_is_refused_without_showing_its_contents(
    tmp_path: Path,
) -> None:
    (tmp_path / "slack").write_text("xoxb-token-never-print-me\n")
    code, output = validate(spec_file(tmp_path, {"slack": [{"urlFile": str(tmp_path / "slack")}]}))
    assert code == 3 and "spec.notifications.slack.0.urlFile: " in output
    assert "never-print-me" not in output


def test_an_inline_slack_url_is_never_shown(tmp_path: Path) -> None:
    spec, _ = load_spec(spec_file(tmp_path, {"slack": [{"url": SECRET_URL}]}))
    assert "never-print-me" not in repr(spec) and "never-print-me" not in str(spec)


def test_a_secret_file_gone_after_validation_is_refused_at_run(tmp_path: Path) -> None:
    (tmp_path / "hmac").write_text("s3cret")
    path = spec_file(
        tmp_path, {"webhooks": [{"url": "http://h/x", "secretFile": str(tmp_path / "hmac")}]}
    )
    spec, _ = load_spec(path)
    (tmp_path / "hmac").unlink()
    with pytest.raises(SpecError) as refused:
        build_notifier(spec.spec.notifications)
    assert "spec.notifications.webhooks.0.secretFile" in str(refused.value)
