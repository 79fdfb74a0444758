"""`rollout run`'s telemetry options refused as bad input, and the JSON log format."""

from __future__ import annotations

import io
import json
import logging
import socket
from pathlib import Path

from typer.testing import CliRunner

from rollout.cli import app
from rollout.telemetry import LogFormat
from rollout.telemetry.logs import configure_logging
from tests.support.unreached_spec import write_unreached_spec

runner = CliRunner()


def test_a_metrics_port_in_use_exits_3_before_anything_runs(tmp_path: Path) -> None:
    spec = write_unreached_spec(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(
            app, ["run", str(spec), "--state-dir", str(tmp_path / "s"), "--metrics-port", str(port)]
        )
    assert result.exit_code == 3, result.output
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.output
    assert not (tmp_path / "s").exists()


def test_a_bad_log_format_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(tmp_path / "x.yaml"), "--log-format", "xml"])
    assert result.exit_code == 3


def test_json_log_lines_carry_the_rollouts_fields() -> None:
    stream = io.StringIO()
    handler = configure_logging(LogFormat.JSON, stream)
    try:
        fields = {"rollout": "fraud", "model": "fraud-detector", "step": 2, "decision": "step"}
        logging.getLogger("rollout.controller").info("step: %s", "50/50", extra={"fields": fields})
        logging.getLogger("rollout.controller").debug("not shown")
    finally:
        logging.getLogger("rollout").removeHandler(handler)
    (line,) = stream.getvalue().splitlines()
    document = json.loads(line)
    assert document["message"] == "step: 50/50" and document["level"] == "info"
    assert {k: document[k] for k in fields} == fields
    assert document["logger"] == "rollout.controller" and document["ts"].endswith("+00:00")
