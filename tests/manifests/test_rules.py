"""The SLO rules: promtool accepts them, their unit tests pass (and can fail), and the
PrometheusRule holds exactly the plain rules file's groups."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.manifests.render import PROMETHEUS_RULE, ROOT, RULES, prometheus_rule, rule_groups

UNIT_TESTS = Path(__file__).with_name("rules_test.yaml")
ALERTS = ("HighErrorRateFastBurn", "ErrorBudgetBurn", "LatencyP95High")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is not on PATH: apt-get install -y prometheus (`make test` does)"
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=300, cwd=ROOT, check=False
    )


def _rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups(RULES.read_text()) for rule in group["rules"]]


def test_promtool_check_rules_accepts_the_rules_file() -> None:
    done = _promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in done.stdout


def test_the_rules_define_the_guides_alerts_with_their_severities() -> None:
    alerts = {rule["alert"]: rule for rule in _rules() if "alert" in rule}
    assert set(alerts) == set(ALERTS)
    assert {name: rule["labels"]["severity"] for name, rule in alerts.items()} == {
        "HighErrorRateFastBurn": "critical",
        "ErrorBudgetBurn": "critical",
        "LatencyP95High": "warning",
    }
    assert {name: rule["for"] for name, rule in alerts.items()} == {
        "HighErrorRateFastBurn": "5m",
        "ErrorBudgetBurn": "2m",
        "LatencyP95High": "10m",
    }


def test_promtool_unit_tests_pass() -> None:
    done = _promtool("test", "rules", str(UNIT_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_each_alert_is_unit_tested_firing_then_resolved() -> None:
    tests = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    for alert in ALERTS:

        def fires_then_resolves(group: dict[str, Any], alert: str = alert) -> bool:
            checks = [c for c in group.get("alert_rule_test", []) if c["alertname"] == alert]
            fired = [_minutes(c["eval_time"]) for c in checks if c["exp_alerts"]]
            quiet = [_minutes(c["eval_time"]) for c in checks if not c["exp_alerts"]]
            return bool(fired) and any(t > max(fired) for t in quiet)

        assert any(fires_then_resolves(group) for group in tests), (
            f"no unit test shows {alert} firing and then resolved"
        )


def _minutes(duration: str) -> int:
    value, unit = int(duration[:-1]), duration[-1]
    return value * {"m": 1, "h": 60}[unit]


# Loosened or tightened knobs the unit tests must notice: each test has teeth.
MUTATIONS = [
    ("ratio_rate1h / 0.01 > 14.4", "ratio_rate1h / 0.01 > 1.44", "ErrorBudgetBurn"),  # blip
    ("ratio_rate6h / 0.01 > 6\n", "ratio_rate6h / 0.01 > 9\n", "ErrorBudgetBurn"),  # slow burn
    ("ratio_rate5m > 0.05", "ratio_rate5m > 0.5", "HighErrorRateFastBurn"),
    ("for: 5m", "for: 0m", "HighErrorRateFastBurn"),
    ("p95_5m > 0.15", "p95_5m > 0.2", "LatencyP95High"),
    ("for: 10m", "for: 1m", "LatencyP95High"),
]


@pytest.mark.parametrize(("original", "mutant", "alert"), MUTATIONS)
def test_the_unit_tests_fail_on_a_changed_threshold(
    tmp_path: Path, original: str, mutant: str, alert: str
) -> None:
    rules = RULES.read_text()
    assert rules.count(original) == 1, f"{original!r} is not in {RULES} once"
    copy = tmp_path / RULES.relative_to(ROOT)
    copy.parent.mkdir(parents=True)
    copy.write_text(rules.replace(original, mutant))
    tests = tmp_path / UNIT_TESTS.relative_to(ROOT)
    tests.parent.mkdir(parents=True)
    shutil.copy(UNIT_TESTS, tests)
    done = _promtool("test", "rules", str(tests))
    assert done.returncode != 0, f"the unit tests pass with {mutant!r}"
    assert f"alertname: {alert}" in done.stdout + done.stderr


def test_the_prometheus_rule_holds_the_rules_files_groups() -> None:
    resource = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert resource["apiVersion"] == "monitoring.coreos.com/v1"
    assert resource["kind"] == "PrometheusRule"
    assert resource["spec"]["groups"] == rule_groups(RULES.read_text())
    assert PROMETHEUS_RULE.read_text() == prometheus_rule(RULES.read_text()), (
        f"{PROMETHEUS_RULE} is stale: run `python -m tests.manifests.render`"
    )
