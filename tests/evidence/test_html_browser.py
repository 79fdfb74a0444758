"""report.html as a person opens it: Debian's Chromium, headless, on reports of real rollouts.

Each report is rendered twice (`--dump-dom` and `--screenshot`) with a network log and every
host name mapped to nothing. The DOM after load must hold each plot's paths, the screenshot must
show their colours, and the network log must show no request made for the page.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
import zlib
from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

from rollout.driver import run_from_spec
from rollout.evidence import charts
from rollout.exit_codes import ExitCode
from rollout.gate import GateRequest, run_gate
from tests.support.backfill import BackfilledPrometheus
from tests.support.replay import POLICY, ReplayClock, Stack, make_spec
from tests.support.scenarios import BASELINE, CANDIDATE, GATE_WINDOW

WIDTH = 1100
# The flags of a person's headless Chromium, plus: no background traffic of its own, so the
# network log holds the page's requests and little else.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--enable-logging=stderr",  # the page's console (a blocked script or style says so there)
    "--v=0",
)


# ---------------------------------------------------------------------------- Chromium


def chromium() -> str:
    found = shutil.which("chromium")
    assert found, "Chromium is not installed: `make test` installs it (apt-get install chromium)"
    return found


@dataclass(frozen=True)
class Rendered:
    dom: str
    screenshot: Image
    network: str  # the network logs' text, both runs
    console: str  # Chromium's log, the page's console messages in it
    page_requests: tuple[str, ...]  # URLs requested for the page (not by the browser itself)


def render(page: Path, workdir: Path, height: int = 3000) -> Rendered:
    workdir.mkdir(parents=True, exist_ok=True)
    url = page.resolve().as_uri()
    dom_log, shot_log, shot = workdir / "dom.net.json", workdir / "shot.net.json", workdir / "s.png"
    dom, console = _run(workdir / "profile-dom", f"--log-net-log={dom_log}", "--dump-dom", url)
    _, shot_console = _run(
        workdir / "profile-shot",
        f"--log-net-log={shot_log}",
        f"--window-size={WIDTH},{height}",
        f"--screenshot={shot}",
        url,
    )
    logs = [dom_log.read_text(), shot_log.read_text()]
    requests = tuple(r for log in logs for r in page_requests(log))
    screenshot = decode_png(shot.read_bytes())
    return Rendered(dom, screenshot, "\n".join(logs), console + shot_console, requests)


def _run(profile: Path, *args: str) -> tuple[str, str]:
    """Chromium's stdout and stderr."""
    done = subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


def page_requests(net_log: str) -> list[str]:
    """URLs of requests made on behalf of a file:// page. Chromium's own (updates, accounts)
    carry another isolation key; `test_the_network_check_sees_a_page_that_fetches` shows this
    finds a page's fetches on the installed Chromium."""
    try:
        log = json.loads(net_log)
    except ValueError:  # a log cut short ends without its closing brackets
        log = json.loads(net_log.rstrip().rstrip(",") + "]}")
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if event["type"] != start_job or "url" not in params:
            continue
        key = str(params.get("network_isolation_key", ""))
        if "file://" in key or params.get("initiator") == "null":
            urls.append(str(params["url"]))
    return urls


# ---------------------------------------------------------------------------- PNG


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    channels: int
    rows: tuple[bytes, ...]

    def pixels(self) -> Counter[tuple[int, int, int]]:
        counts: Counter[tuple[int, int, int]] = Counter()
        step = self.channels
        for row in self.rows:
            counts.update(zip(row[0::step], row[1::step], row[2::step], strict=True))
        return counts


def decode_png(data: bytes) -> Image:
    """8-bit RGB(A), not interlaced, as Chromium writes screenshots (no Pillow needed)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, chunks = 8, []
    width = height = depth = colour = interlace = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    prior = bytearray(stride)
    rows = []
    for y in range(height):
        start = y * (stride + 1)
        line = _unfilter(
            raw[start], bytearray(raw[start + 1 : start + 1 + stride]), prior, channels
        )
        rows.append(bytes(line))
        prior = line
    return Image(width, height, channels, tuple(rows))


def _unfilter(kind: int, line: bytearray, prior: bytearray, bpp: int) -> bytearray:
    """PNG's five row filters (RFC 2083, 6.2-6.6)."""
    if kind == 1:
        for i in range(bpp, len(line)):
            line[i] = (line[i] + line[i - bpp]) & 0xFF
    elif kind == 2:
        line = bytearray((a + b) & 0xFF for a, b in zip(line, prior, strict=True))
    elif kind == 3:
        for i in range(len(line)):
            left = line[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + ((left + prior[i]) >> 1)) & 0xFF
    elif kind == 4:
        for i in range(len(line)):
            a, c = (line[i - bpp], prior[i - bpp]) if i >= bpp else (0, 0)
            b = prior[i]
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
    else:
        assert kind == 0, f"unknown PNG filter {kind}"
    return line


def near(counts: Counter[tuple[int, int, int]], colour: str, tolerance: int = 24) -> int:
    """Pixels within `tolerance` per channel of `#rrggbb` (antialiased edges blend a little)."""
    target = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return sum(
        n
        for pixel, n in counts.items()
        if all(abs(p - t) <= tolerance for p, t in zip(pixel, target, strict=True))
    )


# ---------------------------------------------------------------------------- DOM


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    figure: str  # the id of the <figure> it is in, "" outside any


class DomIndex(HTMLParser):
    """Every element with the <figure> it sits in, and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[Element] = []
        self.figures: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "figure":
            self.figures.append(values.get("id", ""))
        self.elements.append(Element(tag, values, self.figures[-1] if self.figures else ""))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag == "figure":
            self.figures.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure" and self.figures:
            self.figures.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def in_figure(self, figure: str, tag: str, cls: str | None = None) -> list[Element]:
        return [
            e
            for e in self.elements
            if e.figure == figure
            and e.tag == tag
            and (cls is None or cls in e.attrs.get("class", "").split())
        ]


def index(dom: str) -> DomIndex:
    parsed = DomIndex()
    parsed.feed(dom)
    return parsed


def points(d: str) -> int:
    return len(re.findall(r"[ML]", d))


def assert_nothing_fetched(rendered: Rendered) -> None:
    assert rendered.page_requests == (), rendered.page_requests


def assert_nothing_blocked(rendered: Rendered) -> None:
    """The page's own style and script run under its Content-Security-Policy."""
    assert "Content Security Policy" not in rendered.console, rendered.console[-3000:]


def assert_plots_drawn(rendered: Rendered, *, figures: tuple[str, ...], min_points: int) -> None:
    dom = index(rendered.dom)
    found = {e.attrs.get("id") for e in dom.elements if e.tag == "figure"}
    assert set(figures) <= found, found
    for figure in figures:
        lines = [*dom.in_figure(figure, "path", "cdf"), *dom.in_figure(figure, "path", "series")]
        drawn = [points(p.attrs["d"]) for p in lines]
        assert drawn and max(drawn) >= min_points, (figure, drawn)
    pixels = rendered.screenshot.pixels()
    assert len(pixels) > 200, "the screenshot is (nearly) blank"
    for colour in (charts.BASELINE_COLOUR, charts.CANDIDATE_COLOUR):
        assert near(pixels, colour) > 1500, (colour, near(pixels, colour))
    for colour in charts.METRIC_COLOURS[:2]:  # error rate and latency e-values, thresholds
        assert near(pixels, colour) > 400, (colour, near(pixels, colour))


# ---------------------------------------------------------------------------- the reports


def driven_report(
    model: str, stack: Stack, prometheus: BackfilledPrometheus, tmp_path: Path
) -> tuple[ExitCode, Path]:
    """A rollout by the driver on the replay bench (real HAProxy, real Prometheus); the
    directory its reports were written to."""
    reports = tmp_path / "report"
    with (tmp_path / "console.txt").open("a") as console:
        code = run_from_spec(
            make_spec(model, stack.haproxy, prometheus.url),
            POLICY,
            state_dir=tmp_path / "state",
            report_dir=reports,
            console=Console(file=console, width=200),
            clock=ReplayClock(prometheus.dataset.start + 120),
        )
    return code, reports


def test_a_rolled_back_rollouts_report_draws_its_plots_and_fetches_nothing(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    code, reports = driven_report("gate-p95-30", stack, synthetic_prometheus, tmp_path)
    assert code is ExitCode.ROLLED_BACK
    looks = len(json.loads((reports / "report.json").read_text())["observations"])
    assert looks >= 3
    rendered = render(reports / "report.html", tmp_path / "chromium")
    assert_nothing_fetched(rendered)
    assert_nothing_blocked(rendered)
    figures = ("latency-distribution", "latency-over-time", "errors-over-time", "e-values")
    assert_plots_drawn(rendered, figures=figures, min_points=looks)
    dom = index(rendered.dom)
    # Both versions' quantiles are marked, the candidate's to the right of the baseline's.
    markers = {
        m.attrs["data-version"]: float(m.attrs["x1"])
        for m in dom.in_figure("latency-distribution", "line", "quantile-marker")
    }
    assert markers["2.4.0"] > markers["2.3.1"]
    # The latency test's e-value reaches its threshold: its last point is above the line.
    e_values = dom.in_figure("e-values", "path", "series")
    latency = next(p for p in e_values if p.attrs["data-series"] == "P95 latency")
    last_y = float(latency.attrs["d"].split()[-1])
    thresholds = [float(t.attrs["y1"]) for t in dom.in_figure("e-values", "line", "threshold")]
    assert last_y <= min(thresholds)  # SVG's y grows downwards: above = smaller
    assert len(dom.in_figure("latency-over-time", "line", "decision")) == 1
    assert dom.in_figure("latency-over-time", "line", "step")  # the 80/20 step
    # Its policy is the safety net: an image from elsewhere slipped into it is never fetched.
    page = (reports / "report.html").read_text()
    slipped = tmp_path / "slipped.html"
    slipped.write_text(page.replace("<main>", '<main><img src="http://images.example/x.png">', 1))
    blocked = render(slipped, tmp_path / "chromium-slipped", height=600)
    assert_nothing_fetched(blocked)
    assert "images.example" in blocked.console and "Content Security Policy" in blocked.console


def test_a_promotions_report_states_its_proof(
    stack: Stack, synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    code, reports = driven_report("gate-same", stack, synthetic_prometheus, tmp_path)
    assert code is ExitCode.PROMOTED
    rendered = render(reports / "report.html", tmp_path / "chromium")
    assert_nothing_fetched(rendered)
    assert_nothing_blocked(rendered)
    looks = len(json.loads((reports / "report.json").read_text())["observations"])
    figures = ("latency-distribution", "latency-over-time", "errors-over-time", "e-values")
    assert_plots_drawn(rendered, figures=figures, min_points=looks)
    text = " ".join(" ".join(index(rendered.dom).text).split())
    proof = text[text.index("The proof") : text.index("Plots")]
    assert re.search(r"Change in P95 latency [\d.]+ ms → [\d.]+ ms: [-+][\d.]+% \(", proof), proof
    assert "CI" in proof and "Error rate" in proof and "Quantile P95 (q = 0.95)" in proof
    assert re.search(r"\d+ PromQL queries over \d+ look", proof), proof
    assert "Example traces baseline 2.3.1" in proof and "candidate 2.4.0" in proof
    # Every query is in the page, each with a copy button pointing at its text.
    dom = index(rendered.dom)
    buttons = [e.attrs["data-copy"] for e in dom.elements if e.tag == "button"]
    assert not [e for e in dom.elements if e.tag == "button" and "hidden" in e.attrs]
    blocks = {e.attrs["id"] for e in dom.elements if e.tag == "pre"}
    queries = sum(
        len(o["queries"]) for o in json.loads((reports / "report.json").read_text())["observations"]
    )
    assert len(buttons) == queries > 0 and set(buttons) == blocks


def test_a_failed_gates_report_shows_which_e_value_crossed_its_threshold(
    synthetic_prometheus: BackfilledPrometheus, tmp_path: Path
) -> None:
    end = synthetic_prometheus.dataset.end
    reports = tmp_path / "report"
    request = GateRequest(
        prometheus_url=synthetic_prometheus.url,
        model="gate-errors",
        baseline=BASELINE,
        candidate=CANDIDATE,
        policy="default",
        window=None,
        start=f"{end - GATE_WINDOW:.0f}",
        end=f"{end:.0f}",
        report_dir=reports,
        output_format="text",
        bearer_token_file=None,
    )
    with (tmp_path / "console.txt").open("w") as console:
        assert run_gate(request, Console(file=console, width=200)) is ExitCode.ROLLED_BACK
    rendered = render(reports / "report.html", tmp_path / "chromium")
    assert_nothing_fetched(rendered)
    assert_nothing_blocked(rendered)
    looks = len(json.loads((reports / "report.json").read_text())["observations"])
    figures = ("latency-distribution", "latency-over-time", "errors-over-time", "e-values")
    assert_plots_drawn(rendered, figures=figures, min_points=looks)
    dom = index(rendered.dom)
    last = {
        p.attrs["data-series"]: float(p.attrs["d"].split()[-1])
        for p in dom.in_figure("e-values", "path", "series")
    }
    thresholds = [float(t.attrs["y1"]) for t in dom.in_figure("e-values", "line", "threshold")]
    # The error rate's line ends above both thresholds, the latency's below both (SVG's y
    # grows downwards): the plot shows which test decided.
    assert last["error rate"] <= min(thresholds) and last["P95 latency"] > max(thresholds)
    assert not dom.in_figure("latency-over-time", "line", "step")  # a gate moves no traffic


def test_the_network_check_sees_a_page_that_fetches(tmp_path: Path) -> None:
    """The check above can fail: a page with an image and a script from elsewhere is caught."""
    page = tmp_path / "fetching.html"
    page.write_text(
        '<!DOCTYPE html><html><body><img src="http://images.example/x.png">'
        '<script src="https://cdn.example/lib.js"></script></body></html>'
    )
    rendered = render(page, tmp_path / "chromium", height=400)
    assert set(rendered.page_requests) >= {
        "http://images.example/x.png",
        "https://cdn.example/lib.js",
    }


@pytest.mark.e2e
@pytest.mark.slow
def test_the_demo_ends_with_its_html_report_whose_traces_show_where_the_time_went(
    tmp_path: Path,
) -> None:
    reports = tmp_path / "demo"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rollout.cli",
            "demo",
            "--scenario",
            "latency",
            "--report-dir",
            str(reports),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == int(ExitCode.ROLLED_BACK), done.stdout + done.stderr
    page = reports / "report.html"
    last = done.stdout.strip().splitlines()[-1]
    assert str(page.resolve()) in last, last
    rendered = render(page, tmp_path / "chromium", height=3400)
    assert_nothing_fetched(rendered)
    dom = index(rendered.dom)
    stages = dom.in_figure("trace-breakdown", "rect", "stage")
    assert {s.attrs["data-stage"] for s in stages} >= {
        "feature_store.get_features",
        "model.infer",
        "postprocess.serialize",
    }
    pixels = rendered.screenshot.pixels()
    for colour in charts.STAGE_COLOURS.values():
        assert near(pixels, colour) > 300, (colour, near(pixels, colour))
    # The baseline's typical traces were gathered too: its median breakdown is the first bar,
    # and the page names an example trace of each version.
    assert "v1 typical (median of" in rendered.dom
    assert "no trace of it in this report" not in rendered.dom
    # The spans file the trace links point into was never read as a page resource.
    assert "spans-v2.jsonl" not in rendered.network
