"""report.html's builders on plain values: scales, the quantile marker, the e-values per look,
span breakdowns, escaping, and a page that names nothing to fetch."""

from __future__ import annotations

import base64
import hashlib
import itertools
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from rollout.analysis.judge import judge
from rollout.analysis.observation import Bucket, Observation, QueryRecord, Target, VersionCounts
from rollout.evidence import charts, svg
from rollout.evidence.figures import OTHER, Distribution, breakdown, figures, typical_breakdown
from rollout.evidence.html import render_html
from rollout.evidence.render import write_reports
from rollout.evidence.report import Report, SpanTiming, TraceEvidence, WeightChange
from rollout.instrument.metrics import LATENCY_BUCKETS
from rollout.routers.base import Weights
from rollout.spec import Policy

T0 = 1_714_564_800.0  # 2024-05-01 12:00:00 UTC
TARGET = Target(model="fraud-detector", baseline="2.3.1", candidate="2.4.0")
POLICY = Policy.model_validate({"steps": [{"weight": 20, "hold": "2m"}], "minRequests": 200})
LES = (*sorted(LATENCY_BUCKETS), math.inf)
LOOK = 60.0


# ---------------------------------------------------------------------------- builders


def counts(n: int, *, scale: float = 1.0, errors: int = 0) -> VersionCounts:
    """n requests with lognormal latencies (median 50 ms x scale), bucketed exactly: no RNG."""
    cdf = sps.lognorm.cdf(LES, 0.4, scale=0.05 * scale)
    return VersionCounts(
        n, errors, tuple(Bucket(le, round(n * c)) for le, c in zip(LES, cdf, strict=True))
    )


def looks(k: int, *, scale: float = 1.0) -> tuple[Observation, ...]:
    return tuple(
        Observation(
            T0 + i * LOOK,
            T0 + (i + 1) * LOOK,
            counts(2000, errors=10),
            counts(500, scale=scale, errors=3),
            queries=(QueryRecord("requests", f'sum(x{{look="{i}"}})', T0 + (i + 1) * LOOK, 2),),
        )
        for i in range(k)
    )


def trace(version: str, infer: float, *, link: str = "", kind: str = "slow") -> TraceEvidence:
    spans = (
        SpanTiming("POST /predict", 0.02 + infer + 0.005 + 0.004),
        SpanTiming("feature_store.get_features", 0.02),
        SpanTiming("model.infer", infer),
        SpanTiming("postprocess.serialize", 0.005),
    )
    trace_id = f"{version.replace('.', '')}{infer * 1000:04.0f}".ljust(32, "a")
    return TraceEvidence(
        trace_id=trace_id,
        version=version,
        kind=kind,
        latency_seconds=spans[0].duration_seconds,
        timestamp=T0 + 30,
        link=link or f"http://jaeger.example:16686/trace/{trace_id}",
        spans=spans,
    )


def report(observations: tuple[Observation, ...], **fields: object) -> Report:
    values: dict[str, object] = {
        "kind": "rollout",
        "name": "fraud",
        "target": TARGET,
        "decision": "rolled_back",
        "reason": "P95 regressed",
        "policy": POLICY,
        "judgement": judge(observations, POLICY) if observations else None,
        "observations": observations,
        "weight_changes": (
            WeightChange(T0, Weights(80, 20), "step 1"),
            WeightChange(T0 + LOOK * len(observations), Weights(100, 0), "rolled back"),
        ),
        "started_at": T0,
        "finished_at": T0 + LOOK * len(observations),
        "evidence": (trace("2.3.1", 0.04), trace("2.3.1", 0.05), trace("2.4.0", 0.12)),
    }
    return Report(**(values | fields))  # type: ignore[arg-type]


class Page(HTMLParser):
    """Every start tag with its attributes, in order, and the script's text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)

    def find(self, tag: str, cls: str | None = None) -> list[dict[str, str]]:
        return [
            a
            for t, a in self.tags
            if t == tag and (cls is None or cls in a.get("class", "").split())
        ]


def path_points(d: str) -> list[tuple[float, float]]:
    numbers = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", d)]
    return list(zip(numbers[0::2], numbers[1::2], strict=True))


def y_at(points: list[tuple[float, float]], x: float) -> float:
    """A polyline's y at x (linear between its vertices)."""
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x0 <= x <= x1 and x1 > x0:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    raise AssertionError(f"x={x} is not on the path")


# ---------------------------------------------------------------------------- scales


def test_a_linear_scale_maps_its_domain_onto_its_pixels() -> None:
    x = svg.Linear(0.0, 0.2, 72.0, 736.0)
    assert (x(0.0), x(0.2), x(0.15)) == (72.0, 736.0, pytest.approx(570.0))
    y = svg.Linear(0.0, 1.0, 254.0, 20.0)  # SVG's y grows downwards
    assert y(0.95) == pytest.approx(254.0 - 0.95 * 234.0)


def test_ticks_are_round_numbers_and_axis_ends_land_on_one() -> None:
    assert svg.nice_ticks(0.0, 0.2) == [0.0, 0.05, 0.1, 0.15, 0.2]
    assert svg.nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert svg.nice_top(0.147) == pytest.approx(0.15)
    assert svg.nice_top(183.0) == 200.0
    assert svg.nice_top(0.0) == 1.0 and svg.nice_top(math.nan) == 1.0


def test_time_ticks_fall_on_whole_minutes_and_log_ticks_on_powers_of_ten() -> None:
    assert svg.Seconds(0.0, 330.0, 0.0, 100.0).ticks() == [0.0, 60.0, 120.0, 180.0, 240.0, 300.0]
    assert svg.Seconds(0.0, 5.0, 0.0, 100.0).ticks() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    log = svg.Log10(0.1, 1000.0, 200.0, 0.0)
    assert log.ticks() == [0.1, 1.0, 10.0, 100.0, 1000.0]
    assert log(10.0) == pytest.approx(100.0) and log(0.0) == 200.0  # below the axis: its floor
    assert [charts.power_label(v) for v in (0.1, 400.0, 1e11)] == ["0.1", "400", "1e11"]


def test_a_path_breaks_at_a_gap_and_never_writes_a_non_finite_coordinate() -> None:
    d = svg.path_data([(1.0, 2.0), (3.0, 4.0), None, (5.0, math.nan), (7.0, 8.0), (9.0, 10.0)])
    assert d == "M1.0 2.0 L3.0 4.0 M7.0 8.0 L9.0 10.0"


# ---------------------------------------------------------------------------- the CDF


def test_the_quantile_marker_stands_where_the_cdf_crosses_the_quantile() -> None:
    """Buckets <= 50 ms: 50, <= 100 ms: 90, <= 200 ms: 100 of 100 requests: P95 = 150 ms,
    halfway up the (100, 200] bucket, where the drawn CDF reaches 95%."""
    points = ((0.0, 0.0), (0.05, 0.5), (0.1, 0.9), (0.2, 1.0))
    cdf = Distribution("candidate", "2.4.0", points, quantile=0.15, requests=100)
    page = Page(charts.distribution_chart([cdf], 0.95, ["#ea580c"]))
    (marker,) = page.find("line", "quantile-marker")
    frame = svg.Frame(height=300)
    # the axis ends at 200 ms (the tail; 1.25 x P95 = 187.5 ms is below it): 150 ms is 3/4 in
    assert float(marker["x1"]) == pytest.approx(frame.x0 + 0.75 * (frame.x1 - frame.x0), abs=0.1)
    assert marker["data-seconds"] == "0.15"
    (curve,) = page.find("path", "cdf")
    level = frame.y0 - 0.95 * (frame.y0 - frame.y1)
    assert y_at(path_points(curve["d"]), float(marker["x1"])) == pytest.approx(level, abs=0.2)
    assert float(marker["y2"]) == pytest.approx(level, abs=0.1)


def test_the_distributions_are_the_judges_totals_and_their_quantiles_its_estimates() -> None:
    history = looks(4, scale=1.3)
    drawn = figures(report(history)).distributions
    latency = next(c for c in judge(history, POLICY).comparisons if c.metric == "latency_p95")
    assert [d.version for d in drawn] == ["2.3.1", "2.4.0"]
    assert [d.requests for d in drawn] == [8000, 2000]
    assert drawn[0].quantile == pytest.approx(latency.baseline)
    assert drawn[1].quantile == pytest.approx(latency.candidate)
    assert all(b[1] >= a[1] for d in drawn for a, b in itertools.pairwise(d.points))


# ---------------------------------------------------------------------------- over time


def test_e_values_per_look_end_at_the_reports_judgement_and_never_fall() -> None:
    history = looks(5, scale=1.6)
    data = figures(report(history))
    final = {c.metric: c for c in judge(history, POLICY).comparisons}
    assert {e.metric for e in data.e_values} == set(final)
    for series in data.e_values:
        assert len(series.values) == 5
        assert series.values[-1] == pytest.approx(final[series.metric].e_value)
        assert series.threshold == final[series.metric].threshold
        known = [v for v in series.values if v is not None]
        assert known == sorted(known)  # the largest so far
    latency = next(e for e in data.e_values if e.metric == "latency_p95")
    assert latency.threshold is not None and (latency.values[-1] or 0) >= latency.threshold


def test_each_look_shows_its_own_quantile_and_error_rate() -> None:
    history = looks(3, scale=1.3)
    data = figures(report(history))
    assert [p.at for p in data.looks] == [o.end for o in history]
    first = data.looks[0]
    assert first.baseline_error_rate == pytest.approx(10 / 2000)
    assert first.candidate_error_rate == pytest.approx(3 / 500)
    assert first.candidate_latency is not None and first.baseline_latency is not None
    assert first.candidate_latency / first.baseline_latency == pytest.approx(1.3, rel=0.08)


def test_a_weight_change_made_by_the_decision_is_named_on_the_decisions_mark() -> None:
    page = Page(render_html(report(looks(3))))
    decisions = page.find("line", "decision")
    steps = page.find("line", "step")
    assert len(decisions) == len(steps) == 3  # one each per time chart: P95, errors, e-values
    html = render_html(report(looks(3)))
    assert "Rolled back (100/0)" in html and ">80/20<" in html


# ---------------------------------------------------------------------------- traces


def test_a_traces_breakdown_puts_the_roots_time_outside_the_stages_in_other() -> None:
    item = trace("2.4.0", 0.12)
    bars = dict(breakdown(item).stages)
    assert bars["feature_store.get_features"] == 0.02 and bars["model.infer"] == 0.12
    assert bars[OTHER] == pytest.approx(0.004)
    assert sum(bars.values()) == pytest.approx(item.latency_seconds)


def test_the_baselines_typical_breakdown_is_the_median_of_its_traces() -> None:
    typical = typical_breakdown([trace("2.3.1", infer) for infer in (0.03, 0.05, 0.04)])
    assert typical is not None and dict(typical.stages)["model.infer"] == 0.04
    assert typical_breakdown([]) is None


def test_the_trace_plot_sets_each_trace_beside_the_baselines_typical_one() -> None:
    page = Page(render_html(report(looks(2))))
    rows = [t for t, a in page.tags if t == "text" and "row" in a.get("class", "")]
    assert len(rows) == 4  # the baseline's typical bar, then its two traces and the candidate's
    stages = page.find("rect", "stage")
    infer = [float(a["width"]) for a in stages if a["data-stage"] == "model.infer"]
    # one scale: the candidate's 120 ms of model.infer is drawn 120/45 as wide as the median
    assert infer[-1] / infer[0] == pytest.approx(0.12 / 0.045, rel=0.01)


def test_the_proof_names_an_example_trace_of_each_version() -> None:
    html = render_html(report(looks(2)))
    proof = html[html.index('id="proof"') : html.index("<h2>Plots")]
    assert "baseline <code>2.3.1</code>: <a href=" in proof
    assert "candidate <code>2.4.0</code>: <a href=" in proof
    without = render_html(report(looks(2), evidence=(trace("2.4.0", 0.12),)))
    proof = without[without.index('id="proof"') : without.index("<h2>Plots")]
    assert 'baseline <code>2.3.1</code>: <span class="empty">no trace of it' in proof


# ---------------------------------------------------------------------------- the page


HOSTILE = '</title><script>alert(1)</script><img src=x onerror="alert(2)">'


def test_text_from_outside_is_escaped_everywhere() -> None:
    observations = tuple(
        Observation(
            o.start,
            o.end,
            o.baseline,
            o.candidate,
            queries=(QueryRecord(HOSTILE, f"up\n{HOSTILE}", o.end, 1, HOSTILE),),
            problems=(HOSTILE,),
        )
        for o in looks(2)
    )
    hostile = report(
        observations,
        name=HOSTILE,
        reason=HOSTILE,
        target=Target(model=HOSTILE, baseline='v1"><svg onload=alert(3)>', candidate="v2"),
        notes=(HOSTILE,),
        evidence=(trace("v2", 0.1, link="javascript:alert(4)"), trace("v2", 0.2, link=HOSTILE)),
        weight_changes=(WeightChange(T0, Weights(80, 20), HOSTILE),),
    )
    html = render_html(hostile)
    page = Page(html)
    assert [t for t, _ in page.tags].count("script") == 1  # the page's own, nothing injected
    assert not page.find("img")
    assert all(not k.startswith("on") for _, attrs in page.tags for k in attrs)
    assert "javascript:" not in " ".join(a.get("href", "") for a in page.find("a"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_page_names_nothing_to_fetch_and_its_policy_forbids_fetching() -> None:
    html = render_html(report(looks(3)))
    page = Page(html)
    assert not [a for _, a in page.tags if "src" in a or "srcset" in a]
    assert not page.find("link") and not page.find("iframe") and not page.find("object")
    hrefs = [a["href"] for a in page.find("a")]
    links = {e.link for e in report(looks(3)).evidence}
    assert {h for h in hrefs if not h.startswith("#")} == links  # trace links, to click only
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) == links
    (csp,) = [
        a["content"] for t, a in page.tags if a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert "default-src 'none'" in csp
    # the copy buttons' script runs under it: the policy names its exact hash
    (script,) = page.scripts
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp


def test_every_query_has_a_copy_button_for_its_exact_text() -> None:
    html = render_html(report(looks(3)))
    page = Page(html)
    buttons = [a["data-copy"] for a in page.find("button")]
    blocks = [a["id"] for a in page.find("pre")]
    assert buttons == blocks == ["query-0", "query-1", "query-2"]
    assert '<pre id="query-1">sum(x{look=&quot;1&quot;})</pre>' in html


def test_non_finite_numbers_never_reach_a_coordinate() -> None:
    history = list(looks(3))
    empty = VersionCounts(None, None, None)
    history[1] = Observation(history[1].start, history[1].end, empty, empty)
    nan_buckets = VersionCounts(10, 0, (Bucket(0.1, 5), Bucket(math.inf, 10)))
    history.append(Observation(T0 + 3 * LOOK, T0 + 4 * LOOK, nan_buckets, nan_buckets))
    html = render_html(report(tuple(history)))
    numbers = " ".join(
        v
        for _, attrs in Page(html).tags
        for k, v in attrs.items()
        if k in {"d", "x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "width"}
    )
    assert "nan" not in numbers.lower() and "inf" not in numbers.lower()
    series = [a for a in Page(html).find("path", "series") if a["data-series"] == "2.3.1"]
    assert series[0]["d"].count("M") == 2  # the look without counts is a gap in the line


SMALL_LES = (0.05, 0.1, 0.25, math.inf)


def _version(n: int | None, e: int | None, cumulative: list[int] | None) -> VersionCounts:
    buckets = None
    if cumulative is not None:
        buckets = tuple(Bucket(le, c) for le, c in zip(SMALL_LES, cumulative, strict=True))
    return VersionCounts(n, e, buckets)


VERSIONS = st.builds(
    _version,
    st.integers(0, 5000) | st.none(),
    st.integers(0, 200) | st.none(),
    st.lists(st.integers(0, 5000), min_size=4, max_size=4) | st.none(),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(VERSIONS, VERSIONS), min_size=1, max_size=6))
def test_any_counts_render_a_page_with_finite_coordinates(
    pairs: list[tuple[VersionCounts, VersionCounts]],
) -> None:
    """Whatever a source returned (missing series, non-monotone buckets, no requests), the page
    is written and every coordinate in it is a number."""
    history = tuple(
        Observation(T0 + i * LOOK, T0 + (i + 1) * LOOK, base, cand)
        for i, (base, cand) in enumerate(pairs)
    )
    page = Page(render_html(report(history)))
    for _, attrs in page.tags:
        for key in ("x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "width", "height"):
            if key in attrs and attrs[key] and not attrs[key].endswith("%"):
                assert math.isfinite(float(attrs[key])), (key, attrs)
        if "d" in attrs:
            assert all(math.isfinite(v) for point in path_points(attrs["d"]) for v in point)


def test_a_report_without_looks_says_there_is_nothing_to_plot() -> None:
    aborted = report((), decision="aborted", reason="operator", evidence=(), weight_changes=())
    html = render_html(aborted)
    assert "No latency histogram to plot." in html
    assert "No look at the metrics to plot over time." in html
    assert "No trace in this report" in html and "No query text was kept." in html
    assert not Page(html).find("svg")


def test_report_html_is_written_beside_the_other_reports(tmp_path: Path) -> None:
    paths = write_reports(report(looks(2)), tmp_path)
    assert paths["html"] == tmp_path / "report.html"
    assert paths["html"].read_text().startswith("<!DOCTYPE html>")
    assert {p.name for p in tmp_path.iterdir()} == {
        "report.json",
        "report.md",
        "junit.xml",
        "report.html",
    }
