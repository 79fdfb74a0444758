"""Credentials given to the Prometheus source travel to Prometheus (the fault proxy sees
them) and nowhere else: not in exceptions, repr(), logs, reports or the state file."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollout.analysis.observation import MetricsSourceError, Target
from rollout.analysis.prometheus import PrometheusSource
from rollout.spec import PrometheusConfig
from tests.support.backfill import BackfilledPrometheus
from tests.support.cli_faults import ONE_STEP_POLICY, CliRun, FaultStack
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.scenarios import BASELINE, CANDIDATE, GATE_WINDOW

TOKEN = "tok-5f3a9c1e-never-print-me"
HEADER_SECRET = "org-77d1-secret-header"
PASSWORD = "pw-0b8e41-never-print-me"
USER = "reader"
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()  # as good as the password
SECRETS = (TOKEN, HEADER_SECRET, PASSWORD, BASIC)
TARGET = Target("gate-same", BASELINE, CANDIDATE)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@pytest.fixture
def proxy(synthetic_prometheus: BackfilledPrometheus) -> Iterator[FaultProxy]:
    with FaultProxy(synthetic_prometheus.url, delay=1.5) as p:
        yield p


def configs(proxy: FaultProxy, tmp_path: Path) -> dict[str, PrometheusConfig]:
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "password").write_text(PASSWORD)
    host = proxy.url.removeprefix("http://")
    return {
        "bearer": PrometheusConfig(
            url=proxy.url,
            bearer_token_file=tmp_path / "token",
            headers={"X-Scope-OrgID": HEADER_SECRET},
            timeout=0.5,
        ),
        "basic": PrometheusConfig.model_validate(
            {
                "url": proxy.url,
                "basicAuth": {"username": USER, "passwordFile": str(tmp_path / "password")},
                "timeout": 0.5,
            }
        ),
        "url-password": PrometheusConfig(url=f"http://{USER}:{PASSWORD}@{host}", timeout=0.5),
    }


@pytest.mark.parametrize("auth", ["bearer", "basic", "url-password"])
@pytest.mark.parametrize(
    "fault", [Fault.ECHO_HEADERS, Fault.HTTP_500, Fault.INVALID_JSON, Fault.SLOW], ids=str
)
def test_a_failing_prometheus_never_gets_a_credential_into_an_error_or_repr(
    proxy: FaultProxy,
    synthetic_prometheus: BackfilledPrometheus,
    tmp_path: Path,
    auth: str,
    fault: Fault,
) -> None:
    config = configs(proxy, tmp_path)[auth]
    source = PrometheusSource(config)
    end = synthetic_prometheus.dataset.end
    proxy.switch(fault)
    try:
        with pytest.raises(MetricsSourceError) as looked:
            source.observe(TARGET, end - GATE_WINDOW, end)
        with pytest.raises(MetricsSourceError) as exemplars:
            source.exemplars(TARGET, CANDIDATE, end - GATE_WINDOW, end)
    finally:
        source.close()
    for text in (str(looked.value), repr(looked.value), str(exemplars.value), repr(source)):
        assert_no_secret(text)
    assert_no_secret(repr(config) + str(config))
    sent = proxy.seen_headers()[0]
    if auth == "bearer":
        assert sent["authorization"] == f"Bearer {TOKEN}"  # it was sent, just never shown
        assert sent["x-scope-orgid"] == HEADER_SECRET
    else:
        assert sent["authorization"] == f"Basic {BASIC}"


@pytest.mark.slow
@pytest.mark.e2e
def test_a_rollout_with_a_token_keeps_it_out_of_output_reports_and_state(
    fault_stack: FaultStack, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text(TOKEN)
    run = CliRun(
        fault_stack,
        tmp_path,
        "secret-token",
        policy=dict(ONE_STEP_POLICY),
        prometheus={
            "bearerTokenFile": str(tmp_path / "token"),
            "headers": {"X-Scope-OrgID": HEADER_SECRET},
        },
    )
    assert run.run() == 0, run.output()
    assert fault_stack.proxy is not None
    sent = fault_stack.proxy.seen_headers()
    assert {h.get("authorization") for h in sent} == {f"Bearer {TOKEN}"}
    assert {h.get("x-scope-orgid") for h in sent} == {HEADER_SECRET}
    written = [run.state_path, *sorted(run.report_dir.iterdir())]
    assert {p.name for p in written} >= {"report.json", "report.md", "junit.xml"}
    assert_no_secret(run.output())
    for path in written:
        assert_no_secret(path.read_text())


@pytest.mark.e2e
def test_a_refused_start_with_basic_auth_keeps_the_password_out_of_the_output(
    fault_stack: FaultStack, tmp_path: Path
) -> None:
    (tmp_path / "password").write_text(PASSWORD)
    assert fault_stack.proxy is not None
    fault_stack.proxy.switch(Fault.ECHO_HEADERS)
    run = CliRun(
        fault_stack,
        tmp_path,
        "secret-basic",
        prometheus={"basicAuth": {"username": USER, "passwordFile": str(tmp_path / "password")}},
    )
    assert run.run() == 4
    output = run.output()
    assert "HTTP 500" in output and "no traffic was changed" in output
    assert_no_secret(output)
    assert fault_stack.proxy.seen_headers()[0]["authorization"] == f"Basic {BASIC}"
