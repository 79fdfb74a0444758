"""The dashboards' JSON as Grafana reads it, the sidecar's ConfigMap, and the test harness's
imitation of Grafana's variable substitution."""

from __future__ import annotations

from itertools import combinations
from typing import Any

import pytest
import yaml

from tests.manifests.grafana import (
    GLOBALS,
    Selection,
    TimeRange,
    format_value,
    interpolate,
    metric_names,
    queries,
    referenced,
    sort_options,
    variables,
)
from tests.manifests.grafana import load as load_dashboards
from tests.manifests.render import CONFIGMAP, DASHBOARDS, dashboard_files, dashboards_configmap

BOARDS = load_dashboards(DASHBOARDS)
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def test_the_three_views_ship() -> None:
    titles = {board["uid"]: board["title"] for board in BOARDS.values()}
    assert titles == {
        "model-rollout-overview": "Model service: overview",
        "model-rollout-release": "Model service: release",
        "model-rollout-deep-dive": "Model service: deep dive",
    }


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_a_dashboard_has_model_and_version_variables_on_a_chosen_prometheus(name: str) -> None:
    board = BOARDS[name]
    by_name = {v["name"]: v for v in variables(board)}
    assert {"datasource", "model", "version"} <= set(by_name)
    assert by_name["datasource"]["type"] == "datasource"
    assert by_name["datasource"]["query"] == "prometheus"
    for variable in variables(board):
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]
    assert board["id"] is None  # provisioned: Grafana assigns the id, the uid is ours


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_panel_and_annotation_queries_the_chosen_prometheus(name: str) -> None:
    board = BOARDS[name]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]
    for annotation in board["annotations"]["list"]:
        if "expr" in annotation:
            assert annotation["datasource"] == DATASOURCE, annotation["name"]


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_variable_used_is_defined_before_use(name: str) -> None:
    board = BOARDS[name]
    defined: set[str] = set()
    for variable in variables(board):
        query = variable.get("query")
        text = query["query"] if isinstance(query, dict) else str(query)
        assert referenced(text) <= defined, f"{variable['name']} uses a later variable: {text}"
        defined.add(variable["name"])
    texts = [q.expr for q in queries(name, board)] + [p["title"] for p in board["panels"]]
    for text in texts:
        assert referenced(text) <= defined | GLOBALS, text


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_panels_fit_the_24_column_grid_without_overlapping(name: str) -> None:
    boxes = [(p["title"], p["gridPos"]) for p in BOARDS[name]["panels"]]
    for title, box in boxes:
        assert box["x"] >= 0 and box["w"] > 0 and box["x"] + box["w"] <= 24, title
    for (a, p), (b, q) in combinations(boxes, 2):
        apart = (
            p["x"] + p["w"] <= q["x"]
            or q["x"] + q["w"] <= p["x"]
            or p["y"] + p["h"] <= q["y"]
            or q["y"] + q["h"] <= p["y"]
        )
        assert apart, f"{a!r} overlaps {b!r}"


def test_the_configmap_holds_every_dashboard_as_is_for_grafanas_sidecar() -> None:
    configmap: dict[str, Any] = yaml.safe_load(CONFIGMAP.read_text())
    assert configmap["kind"] == "ConfigMap"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["data"] == dashboard_files()
    assert set(configmap["data"]) == set(BOARDS)
    assert CONFIGMAP.read_text() == dashboards_configmap(dashboard_files()), (
        f"{CONFIGMAP} is stale: run `python -m tests.manifests.render`"
    )


# The harness's imitation of Grafana, checked on its own.


def test_a_multi_value_selection_becomes_a_regex_of_escaped_values() -> None:
    both = Selection(("1.10.0", "1.9.0"), multi=True)
    assert format_value(both) == r"(1\\.10\\.0|1\\.9\\.0)"
    assert format_value(Selection(("1.9.0",), multi=True)) == r"1\\.9\\.0"
    assert format_value(Selection(("1.9.0",), multi=False)) == "1.9.0"
    text = interpolate('x{v=~"$version", m="${model}"}', {"version": both, "model": both})
    assert text == r'x{v=~"(1\\.10\\.0|1\\.9\\.0)", m="(1\\.10\\.0|1\\.9\\.0)"}'


def test_interval_variables_follow_the_range_and_the_scrape_interval() -> None:
    six_hours = TimeRange(start=0, end=6 * 3600, scrape_interval=15)
    assert interpolate("[$__interval] [$__rate_interval] [$__range]", {}, six_hours) == (
        "[22s] [60s] [21600s]"
    )
    one_minute = TimeRange(start=0, end=60, scrape_interval=1)
    assert interpolate("$__rate_interval $__range_s", {}, one_minute) == "4s 60"
    with pytest.raises(KeyError, match=r"\$nope"):
        interpolate("rate(x[$nope])", {}, one_minute)


def test_natural_sort_puts_1_10_after_1_9() -> None:
    assert sort_options(["1.9.0", "1.10.0", "1.2.0"], 8) == ["1.10.0", "1.9.0", "1.2.0"]
    assert sort_options(["1.9.0", "1.10.0"], 1) == ["1.10.0", "1.9.0"]


def test_metric_names_skip_functions_labels_and_durations() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, model_version) (rate(a_bucket{le="0.1"}[5m]) '
        "* on (job) group_left (v) group by (job, v) (b_total offset 1m))) / 1e3 + c:rec"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c:rec"}
