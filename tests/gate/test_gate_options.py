"""`rollout gate` options: times, windows, looks, and every usage error exiting 3."""

from __future__ import annotations

import io
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import pytest
from rich.console import Console

from rollout.exit_codes import ExitCode
from rollout.gate import (
    GateRequest,
    UsageError,
    custom_window,
    look_bounds,
    parse_time,
    parse_window,
    resolve_window,
    retention_seconds,
    run_gate,
)
from rollout.spec import AnalysisSettings, load_policy
from tests.support.backfill import BackfilledPrometheus
from tests.support.scenarios import BASELINE, CANDIDATE, GATE_WINDOW

NOW = 1_714_564_800.0  # 2024-05-01T12:00:00Z

REQUEST = GateRequest(
    prometheus_url="http://127.0.0.1:9",
    model="fraud",
    baseline="2.3.1",
    candidate="2.4.0",
    policy="default",
    window="15m",
    start=None,
    end=None,
    report_dir=None,
    output_format="text",
    bearer_token_file=None,
)


def test_times_are_rfc3339_with_a_zone_or_unix_seconds() -> None:
    assert parse_time("2024-05-01T12:00:00Z", "--end") == NOW
    assert parse_time("2024-05-01T14:00:00+02:00", "--end") == NOW
    assert parse_time("2024-05-01T12:00:00.5Z", "--end") == NOW + 0.5
    assert parse_time("1714564800", "--end") == NOW
    assert parse_time("1714564800.25", "--end") == NOW + 0.25
    for bad in ("2024-05-01T12:00:00", "yesterday", "-5", ""):
        with pytest.raises(UsageError, match="--end"):
            parse_time(bad, "--end")


def test_windows_end_now_or_at_end() -> None:
    assert resolve_window(REQUEST, NOW) == (NOW - 900, NOW)
    at = replace(REQUEST, window="1h", end="2024-05-01T11:00:00Z")
    assert resolve_window(at, NOW) == (NOW - 7200, NOW - 3600)
    explicit = replace(REQUEST, window=None, start="1714563000", end="1714564000")
    assert resolve_window(explicit, NOW) == (1_714_563_000.0, 1_714_564_000.0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"window": None, "start": "1714564800", "end": "1714564800"}, "--end must be later"),
        ({"window": None, "start": "1714564900", "end": "1714564800"}, "--end must be later"),
        ({"window": "15m", "start": "1714564000"}, "--window and --start"),
        ({"window": "fifteen"}, "--window"),
        ({"window": "0s"}, "--window"),
        ({"window": None, "start": "1714564000", "end": "1714568400"}, "in the future"),
    ],
)
def test_bad_windows_name_the_option(changes: dict[str, str | None], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resolve_window(replace(REQUEST, **changes), NOW)  # type: ignore[arg-type]


def test_looks_follow_the_policys_interval_and_end_at_the_window_end() -> None:
    policy = load_policy("default")  # 1 minute interval
    assert look_bounds(0, 900, policy) == [(0, 60)] + [(60 * k, 60 * k + 60) for k in range(1, 15)]
    # A remainder joins the first look; a short window is one look.
    assert look_bounds(0, 150, policy) == [(0, 90), (90, 150)]
    assert look_bounds(0, 20, policy) == [(0, 20)]
    # A day at a 1 minute interval would be 1440 looks: capped, still ending at `end`.
    day = look_bounds(0, 86_400, policy)
    assert len(day) == 120 and day[-1] == (85_680, 86_400) and day[0][0] == 0


def test_looks_are_disjoint_when_the_analysis_window_is_wider_than_the_interval() -> None:
    """analysis.window 5m at a 1m interval: the counted looks stay (previous end, end], so
    no request enters the sequential tests twice; only custom queries see 5 minutes."""
    default = load_policy("default")
    policy = default.model_copy(update={"analysis": AnalysisSettings(interval=60, window=300)})
    looks = look_bounds(1000, 1900, policy)
    assert looks == look_bounds(1000, 1900, default)
    assert looks[0] == (1000, 1060) and looks[-1] == (1840, 1900) and len(looks) == 15
    assert all(a[1] == b[0] for a, b in pairwise(looks))
    assert sum(e - s for s, e in looks) == 900
    assert [custom_window(look, 1000, policy) for look in looks[:6]] == [
        60,
        120,
        180,
        240,
        300,
        300,
    ]
    assert {custom_window(look, 1000, default) for look in looks} == {60}
    # A window longer than MAX_LOOKS intervals: each look is longer than analysis.window.
    day = look_bounds(0, 86_400, policy)
    assert all(a[1] == b[0] for a, b in pairwise(day))
    assert custom_window(day[5], 0, policy) == 720


def run(request: GateRequest) -> tuple[ExitCode, str]:
    out = io.StringIO()
    code = run_gate(request, Console(file=out, width=120), now=lambda: NOW)
    return code, out.getvalue()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"prometheus_url": "prometheus:9090"}, "--prometheus-url 'prometheus:9090' is not"),
        ({"policy": "no-such-policy"}, "no policy named 'no-such-policy'"),
        ({"candidate": "2.3.1"}, "--baseline and --candidate are the same"),
        ({"model": " "}, "--model is empty"),
        ({"window": None, "start": "1714564800", "end": "1714564000"}, "--end must be later"),
    ],
)
def test_usage_errors_exit_3_and_say_what_to_fix(changes: dict[str, str], message: str) -> None:
    code, output = run(replace(REQUEST, **changes))  # type: ignore[arg-type]
    assert code == ExitCode.BAD_INPUT
    assert "usage or configuration error" in output and message in output


def test_with_a_machine_format_errors_go_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    code, output = run(replace(REQUEST, output_format="json", prometheus_url="ftp://x"))
    assert code == ExitCode.BAD_INPUT and output == ""
    assert "--prometheus-url 'ftp://x' is not" in capsys.readouterr().err
    code, output = run(replace(REQUEST, output_format="yaml"))
    assert code == ExitCode.BAD_INPUT and "--format 'yaml'" in capsys.readouterr().err


def test_bad_policy_file_and_token_file_exit_3(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("steps: [{weight: 5, hold: 1m}]\nalpha: 2\n")
    code, output = run(replace(REQUEST, policy=str(policy)))
    assert code == ExitCode.BAD_INPUT and "alpha" in output
    missing = tmp_path / "token"
    code, output = run(replace(REQUEST, bearer_token_file=missing))
    assert code == ExitCode.BAD_INPUT and "bearerTokenFile" in output


def test_an_unwritable_report_dir_exits_3(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, output = run(replace(REQUEST, report_dir=blocker / "reports"))
    assert code == ExitCode.BAD_INPUT and "--report-dir" in output


# ---------------------------------------------------------------------------- unwritable outputs


def test_an_unwritable_step_summary_is_a_warning_and_the_exit_code_stays_the_gates_answer(
    synthetic_prometheus: BackfilledPrometheus,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "nonexistent" / "dir" / "s.md"))
    end = synthetic_prometheus.dataset.end
    request = replace(
        REQUEST,
        prometheus_url=synthetic_prometheus.url,
        model="gate-same",
        baseline=BASELINE,
        candidate=CANDIDATE,
        window=None,
        start=f"{end - GATE_WINDOW:.0f}",
        end=f"{end:.0f}",
    )
    out = io.StringIO()
    code = run_gate(request, Console(file=out, width=120))
    assert code == ExitCode.PROMOTED, out.getvalue()  # a pass stays a pass
    err = capsys.readouterr().err
    assert "warning" in err and "GITHUB_STEP_SUMMARY" in err and "Traceback" not in err

    # A usage error keeps its exit 3 when the summary cannot take its message either.
    code, _ = run(replace(REQUEST, prometheus_url="ftp://x"))
    assert code == ExitCode.BAD_INPUT
    assert "could not be written" in capsys.readouterr().err


# ---------------------------------------------------------------------------- windows and names


def test_a_window_needs_a_unit_and_may_be_days_or_weeks() -> None:
    for bare in ("15", "900", "1.5"):
        with pytest.raises(UsageError, match="has no unit"):
            parse_window(bare)
    assert parse_window("15m") == 900
    assert parse_window("90d") == 90 * 86_400
    assert parse_window("2w") == 14 * 86_400
    with pytest.raises(UsageError, match="is not a duration"):
        parse_window("fifteen")
    code, output = run(replace(REQUEST, window="15"))
    assert code == ExitCode.BAD_INPUT and "--window '15' has no unit" in output


def test_retention_is_read_as_prometheus_writes_it() -> None:
    assert retention_seconds("15d") == 15 * 86_400
    assert retention_seconds("15d or 10GiB") == 15 * 86_400
    assert retention_seconds("1y2w") == 365 * 86_400 + 14 * 86_400
    assert retention_seconds("10GiB") is None


def gate_on(prometheus: BackfilledPrometheus, **changes: object) -> GateRequest:
    end = prometheus.dataset.end
    fields: dict[str, object] = {
        "prometheus_url": prometheus.url,
        "model": "gate-same",
        "baseline": BASELINE,
        "candidate": CANDIDATE,
        "window": None,
        "start": f"{end - GATE_WINDOW:.0f}",
        "end": f"{end:.0f}",
        **changes,
    }
    return replace(REQUEST, **fields)  # type: ignore[arg-type]


def run_now(request: GateRequest) -> tuple[ExitCode, str]:
    """The gate at the real time (the backfill lies hours before it)."""
    out = io.StringIO()
    code = run_gate(request, Console(file=out, width=120))
    return code, out.getvalue()


def test_a_window_within_retention_is_judged_and_one_beyond_it_names_the_limit(
    synthetic_prometheus: BackfilledPrometheus,
) -> None:
    end = f"{synthetic_prometheus.dataset.end:.0f}"
    code, output = run_now(gate_on(synthetic_prometheus, start=None, end=end, window="90d"))
    assert code != ExitCode.BAD_INPUT, output  # 90 days: Prometheus keeps them (3650d here)
    code, output = run_now(gate_on(synthetic_prometheus, start=None, end=end, window="20000d"))
    assert code == ExitCode.BAD_INPUT
    assert "retention" in output and "--window" in output


def test_an_unknown_model_is_named_in_one_sentence_with_the_models_seen(
    synthetic_prometheus: BackfilledPrometheus,
) -> None:
    code, output = run_now(gate_on(synthetic_prometheus, model="gate-sme"))
    assert code == ExitCode.PAUSED, output
    line = next(x for x in output.splitlines() if "no series for model_name=gate-sme" in x)
    assert "did you mean gate-same?" in line and "value(s) seen:" in line
    assert "sum by" not in output and "{" not in output  # no query repeated

    code, output = run_now(gate_on(synthetic_prometheus, candidate="9.9.9"))
    assert code == ExitCode.PAUSED  # the model is there, this version is not: not rewritten
    assert "no series for model_name" not in output
