"""`rollout gate`: may this model version go on? One judgement of a window; no traffic moves.

The window is cut into the policy's analysis intervals, each look's queries are
evaluated at the look's end, and the same judge as a rollout decides. A past window
therefore gets the answer it would have got when it happened. Exit codes:
0 pass, 1 fail, 2 inconclusive or no data, 3 usage or configuration, 4 metrics source.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError
from rich.console import Console

from rollout.analysis.judge import judge
from rollout.analysis.observation import (
    MetricsSource,
    MetricsSourceError,
    Target,
)
from rollout.analysis.prometheus import PrometheusSource
from rollout.analysis.queries import string_literal
from rollout.analysis.verdict import Judgement, Verdict
from rollout.evidence.gather import gather_evidence
from rollout.evidence.render import (
    append_step_summary,
    render_json,
    render_junit,
    render_markdown,
    render_text,
    write_reports,
)
from rollout.evidence.report import Report, TraceEvidence
from rollout.exit_codes import ExitCode
from rollout.spec import (
    EvidenceConfig,
    Policy,
    PrometheusConfig,
    SpecError,
    load_policy,
)

DEFAULT_WINDOW = 15 * 60.0
MAX_LOOKS = 120  # a day-long window at a 30 s interval would be thousands of queries
CLOCK_SKEW = 60.0
FORMATS = ("text", "json", "junit", "markdown")
_UNIX = re.compile(r"^\d+(\.\d+)?$")
_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_WINDOW_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_RETENTION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_RETENTION_UNITS = {**_WINDOW_UNITS, "y": 365 * 86400.0}


@dataclass(frozen=True)
class GateRequest:
    """The options of `rollout gate`, as the CLI parsed them."""

    prometheus_url: str
    model: str
    baseline: str
    candidate: str
    policy: str
    window: str | None
    start: str | None
    end: str | None
    report_dir: Path | None
    output_format: str
    bearer_token_file: Path | None


class UsageError(Exception):
    """A bad option: the message names it and says how to fix it."""


# ---------------------------------------------------------------------------- pure parts


def parse_time(value: str, option: str) -> float:
    """RFC 3339 (`2024-05-01T12:00:00Z`, with an offset) or unix seconds -> unix seconds."""
    text = value.strip()
    if _UNIX.match(text):
        return float(text)
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise UsageError(
            f"{option} {value!r} is not a time: write RFC 3339 with a zone, e.g. "
            "2024-05-01T12:00:00Z, or unix seconds, e.g. 1714564800"
        )
    return parsed.timestamp()


def resolve_window(request: GateRequest, now: float) -> tuple[float, float]:
    """[start, end] from `--window` (ending at `--end` or now) or `--start`/`--end`."""
    if request.window is not None and request.start is not None:
        raise UsageError("--window and --start both given: use --window 15m, or --start/--end")
    end = parse_time(request.end, "--end") if request.end is not None else now
    if request.start is not None:
        start = parse_time(request.start, "--start")
    else:
        length = parse_window(request.window) if request.window is not None else DEFAULT_WINDOW
        if length <= 0:
            raise UsageError("--window must be longer than 0, e.g. --window 15m")
        start = end - length
    if not end > start:
        raise UsageError(
            f"the window ends before it starts (start {start:.0f}, end {end:.0f}): "
            "--end must be later than --start"
        )
    if end > now + CLOCK_SKEW:
        raise UsageError(
            f"--end is {end - now:.0f}s in the future: a window must have happened already"
        )
    return start, end


def parse_window(text: str) -> float:
    """`--window`: a number with a unit (ms, s, m, h, d, w) -> seconds. A bare number is
    refused: `--window 15` could mean 15 seconds or 15 minutes."""
    match = _WINDOW.match(text)
    if match is None:
        bare = _UNIX.match(text.strip()) is not None
        why = "has no unit" if bare else "is not a duration"
        raise UsageError(
            f"--window {text!r} {why}: write a number with a unit, e.g. --window 15m "
            "(ms, s, m, h, d or w)"
        )
    return float(match.group(1)) * _WINDOW_UNITS[match.group(2)]


def retention_seconds(text: str) -> float | None:
    """Prometheus' `storageRetention` ("15d", "15d or 10GiB", "1y2w") -> seconds; None when
    no time limit can be read from it."""
    head = text.split(" or ")[0].strip()
    parts = _RETENTION_PART.findall(head)
    if not parts or "".join(n + u for n, u in parts) != head:
        return None
    return sum(float(n) * _RETENTION_UNITS[u] for n, u in parts)


def look_bounds(start: float, end: float, policy: Policy) -> list[tuple[float, float]]:
    """The looks of (start, end]: one per analysis interval, the last ending at `end`.

    Contiguous and disjoint: each look is (previous look's end, its end], so every
    request enters the sequential tests once. A remainder shorter than an interval
    joins the first look. At most MAX_LOOKS looks: a longer window gets
    proportionally longer intervals. `analysis.window` never widens a look's counts
    (see `custom_window`).
    """
    interval = max(policy.analysis.interval, (end - start) / MAX_LOOKS)
    count = max(1, math.floor((end - start) / interval + 1e-9))
    ends = [end - interval * k for k in range(count - 1, -1, -1)]
    return list(zip([start, *ends[:-1]], ends, strict=True))


def custom_window(look: tuple[float, float], start: float, policy: Policy) -> float:
    """The range a look's custom-metric queries see: `analysis.window` when it is wider
    than the look, clipped to the gate window's start; the look itself otherwise."""
    look_start, look_end = look
    return max(look_end - look_start, min(policy.analysis.look_window, look_end - start))


def gate_exit_code(judgement: Judgement) -> ExitCode:
    """Pass only as a step would advance: no regression shown, enough data, nothing leaning."""
    if judgement.verdict is Verdict.FAIL:
        return ExitCode.ROLLED_BACK
    return ExitCode.PROMOTED if judgement.ready else ExitCode.PAUSED


def _decision(judgement: Judgement) -> str:
    if judgement.verdict is Verdict.FAIL:
        return "fail"
    return "pass" if judgement.ready else "inconclusive"


def _check_request(request: GateRequest) -> Target:
    if request.output_format not in FORMATS:
        raise UsageError(f"--format {request.output_format!r}: choose one of {', '.join(FORMATS)}")
    for option, value in (
        ("--model", request.model),
        ("--baseline", request.baseline),
        ("--candidate", request.candidate),
    ):
        if not value.strip():
            raise UsageError(f"{option} is empty: give the label value as Prometheus stores it")
        try:
            string_literal(value)
        except ValueError as exc:
            raise UsageError(f"{option}: {exc}") from None
    if request.baseline == request.candidate:
        raise UsageError("--baseline and --candidate are the same version: compare two versions")
    return Target(model=request.model, baseline=request.baseline, candidate=request.candidate)


def _prometheus_config(request: GateRequest) -> PrometheusConfig:
    try:
        return PrometheusConfig(
            url=request.prometheus_url, bearer_token_file=request.bearer_token_file
        )
    except ValidationError:
        raise UsageError(
            f"--prometheus-url {request.prometheus_url!r} is not an http(s) URL: "
            "write e.g. --prometheus-url http://prometheus:9090"
        ) from None


# ---------------------------------------------------------------------------- the gate


def run_gate(
    request: GateRequest,
    console: Console,
    *,
    now: Callable[[], float] = time.time,
) -> ExitCode:
    """Judge the window, print the verdict, write the reports; return the exit code."""
    diagnostics = console if request.output_format == "text" else Console(stderr=True)
    started = now()
    try:
        target = _check_request(request)
        start, end = resolve_window(request, started)
        policy = load_policy(request.policy)
        config = _prometheus_config(request)
        if request.report_dir is not None:
            _writable(request.report_dir)
        _check_retention(config, start, started)
        source = PrometheusSource(config, policy.metrics, policy.custom_metrics)
    except (UsageError, SpecError) as exc:
        return _stop(diagnostics, ExitCode.BAD_INPUT, "usage or configuration error", str(exc))
    try:
        return _judge_window(request, console, diagnostics, source, target, policy, start, end)
    except MetricsSourceError as exc:
        return _stop(diagnostics, ExitCode.INFRASTRUCTURE, "metrics source failed", str(exc))
    finally:
        source.close()


def _judge_window(
    request: GateRequest,
    console: Console,
    diagnostics: Console,
    source: MetricsSource,
    target: Target,
    policy: Policy,
    start: float,
    end: float,
) -> ExitCode:
    looks = [
        source.observe(target, s, e, custom_window=custom_window((s, e), start, policy))
        for s, e in look_bounds(start, end, policy)
    ]
    judgement = judge(looks, policy)
    evidence: tuple[TraceEvidence, ...] = ()
    notes: tuple[str, ...] = ()
    if judgement.verdict is Verdict.FAIL:
        evidence, notes = _evidence(source, target, start, end, judgement, policy)
    report = Report(
        kind="gate",
        name="gate",
        target=target,
        decision=_decision(judgement),
        reason=judgement.reason,
        policy=policy,
        judgement=judgement,
        observations=tuple(looks),
        evidence=evidence,
        started_at=start,
        finished_at=end,
        notes=(
            f"window {start:.0f}-{end:.0f} in {len(looks)} look(s), evaluated at each look's end",
            *notes,
        ),
    )
    _publish(report, request, console, diagnostics)
    return gate_exit_code(judgement)


def _evidence(
    source: MetricsSource,
    target: Target,
    start: float,
    end: float,
    judgement: Judgement,
    policy: Policy,
) -> tuple[tuple[TraceEvidence, ...], tuple[str, ...]]:
    """Exemplar traces of the candidate's slow or failed requests, for the metrics that failed,
    and typical ones of the baseline (and of the candidate when nothing failed)."""
    settings = EvidenceConfig()
    failed = {c.metric: c for c in judgement.comparisons if c.verdict is Verdict.FAIL}
    latency = failed.get("latency_p95")
    return gather_evidence(
        source,
        target,
        start,
        end,
        slow_above=(
            latency.baseline * (1 + policy.latency.max_regression)
            if latency is not None and latency.baseline is not None
            else None
        ),
        errors="error_rate" in failed,
        template=settings.trace_link_template,
        limit=settings.max_exemplars,
        # A typical trace of each version beside the telling ones (the candidate's on a pass).
        typical_of=(target.baseline,) if failed else (target.baseline, target.candidate),
    )


def _publish(report: Report, request: GateRequest, console: Console, diagnostics: Console) -> None:
    renderers = {
        "text": render_text,
        "json": render_json,
        "junit": render_junit,
        "markdown": render_markdown,
    }
    report = replace(_explain_missing_series(report, request), policy_source=request.policy)
    _write(console, renderers[request.output_format](report))
    if request.report_dir is not None:
        try:
            paths = write_reports(report, request.report_dir)
        except OSError as exc:
            _warn(f"the reports could not be written to {request.report_dir}: {_why(exc)}")
        else:
            _write(diagnostics, "reports: " + ", ".join(str(p) for p in paths.values()) + "\n")
    if request.output_format == "text" and report.notes[1:]:
        _write(diagnostics, "".join(f"note: {n}\n" for n in report.notes[1:]))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            append_step_summary(report, Path(summary))
        except OSError as exc:
            _warn(
                f"the job summary could not be written (GITHUB_STEP_SUMMARY={summary}): {_why(exc)}"
            )


def _explain_missing_series(report: Report, request: GateRequest) -> Report:
    """When no look found a series for either version, say so in a sentence and name the
    models (or versions) Prometheus does have, from one label-values query."""
    looks = report.observations
    if report.decision != "inconclusive" or not looks:
        return report
    if any(v.requests is not None for o in looks for v in (o.baseline, o.candidate)):
        return report
    metrics = report.policy.metrics
    model = report.target.model
    span = f"in [{_iso(report.started_at)}, {_iso(report.finished_at)}]"
    with _MetaClient(_prometheus_config(request)) as meta:
        models = meta.label_values(
            metrics.model_label, metrics.requests, report.started_at, report.finished_at
        )
        if models is None:
            return report
        if model not in models:
            reason = (
                f"no series for {metrics.model_label}={model} {span}; "
                f"{_seen(metrics.model_label, model, models)}"
            )
        else:
            selector = f"{metrics.requests}{{{metrics.model_label}={string_literal(model)}}}"
            versions = meta.label_values(
                metrics.version_label, selector, report.started_at, report.finished_at
            )
            if versions is None:
                return report
            reason = (
                f"no series for {metrics.version_label}={report.target.baseline} or "
                f"{report.target.candidate} of {metrics.model_label}={model} {span}; "
                f"{_seen(metrics.version_label, report.target.candidate, versions)}"
            )
    judgement = report.judgement
    if judgement is not None:
        judgement = replace(judgement, reason=reason)
    return replace(report, reason=reason, judgement=judgement)


def _seen(label: str, wanted: str, values: list[str], show: int = 6) -> str:
    """`did you mean fraud? 12 model_name value(s) seen: fraud, a, b, ...`, closest first."""
    if not values:
        return f"no {label} values seen at all: is the metric name right?"
    close = difflib.get_close_matches(wanted, values, n=1, cutoff=0.6)
    rest = [v for v in values if v not in close]
    listed = ", ".join([*close, *rest][:show]) + (", ..." if len(values) > show else "")
    mean = f"did you mean {close[0]}? " if close else ""
    return f"{mean}{len(values)} {label} value(s) seen: {listed}"


def _check_retention(config: PrometheusConfig, start: float, now: float) -> None:
    """A window reaching past Prometheus' retention is refused, naming the limit."""
    with _MetaClient(config) as meta:
        retention = meta.retention()
    if retention is None:
        return
    seconds, text = retention
    if now - start > seconds + CLOCK_SKEW:
        raise UsageError(
            f"the window starts {(now - start) / 86400:.0f} days ago, before the oldest data "
            f"Prometheus keeps (storage retention {text}): choose a shorter --window or a later "
            "--start"
        )


class _MetaClient:
    """Cheap metadata questions to Prometheus (label values, retention); any failure is
    None: these only sharpen a message or a check, the judgement never depends on them."""

    def __init__(self, config: PrometheusConfig) -> None:
        headers = {k: v.get_secret_value() for k, v in config.headers.items()}
        auth: tuple[str, str] | None = None
        try:
            if config.bearer_token_file is not None:
                token = config.bearer_token_file.read_text(encoding="utf-8").strip()
                headers["Authorization"] = f"Bearer {token}"
            if config.basic_auth is not None:
                password = config.basic_auth.password_file.read_text(encoding="utf-8").strip()
                auth = (config.basic_auth.username, password)
        except OSError:
            pass  # the source reports an unreadable secret file itself
        self._client = httpx.Client(
            base_url=config.url.rstrip("/"),
            headers=headers,
            auth=auth,
            verify=config.tls_verify,
            timeout=min(config.timeout, 5.0),
        )

    def __enter__(self) -> _MetaClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._client.close()

    def _data(self, path: str, params: dict[str, str]) -> Any:
        try:
            response = self._client.get(path, params=params)
            body = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        if not isinstance(body, dict) or body.get("status") != "success":
            return None
        return body.get("data")

    def label_values(self, label: str, match: str, start: float, end: float) -> list[str] | None:
        data = self._data(
            f"/api/v1/label/{label}/values",
            {"match[]": match, "start": f"{start:.3f}", "end": f"{end:.3f}"},
        )
        if not isinstance(data, list):
            return None
        return sorted(str(v) for v in data)

    def retention(self) -> tuple[float, str] | None:
        data = self._data("/api/v1/status/runtimeinfo", {})
        text = data.get("storageRetention") if isinstance(data, dict) else None
        if not isinstance(text, str):
            return None
        seconds = retention_seconds(text)
        return None if seconds is None else (seconds, text)


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stop(diagnostics: Console, code: ExitCode, title: str, message: str) -> ExitCode:
    _write(diagnostics, f"gate: {title} (exit {int(code)}): {message}\n")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with Path(summary).open("a", encoding="utf-8") as handle:
                handle.write(
                    f"\n**rollout gate: {title}** (exit {int(code)})\n\n```\n{message}\n```\n"
                )
        except OSError as exc:
            _warn(
                f"the job summary could not be written (GITHUB_STEP_SUMMARY={summary}): {_why(exc)}"
            )
    return code


def _warn(message: str) -> None:
    """A warning on stderr: it never changes the gate's answer (its exit code)."""
    _write(Console(stderr=True), f"gate: warning: {message}; the exit code is the gate's answer\n")


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _write(console: Console, text: str) -> None:
    """Plain text, as is: no markup, highlighting or wrapping (JSON and XML must stay valid)."""
    console.print(text, end="", markup=False, highlight=False, emoji=False, soft_wrap=True)


def _writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"--report-dir {str(directory)!r} cannot be created ({exc.strerror}): "
            "choose a writable directory"
        ) from None
