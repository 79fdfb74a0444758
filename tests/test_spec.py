"""Spec and policy files: what loads, and what is refused with the field named."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollout.spec import (
    MAX_FILE_BYTES,
    POLICY_DIR,
    SpecError,
    load_policy,
    load_spec,
    parse_duration,
)

VALID_SPEC: dict[str, Any] = {
    "apiVersion": "rollout.mlops.dev/v1alpha1",
    "kind": "ModelRollout",
    "metadata": {"name": "fraud"},
    "spec": {
        "model": "fraud-detector",
        "baseline": {"version": "2.3.1"},
        "candidate": {"version": "2.4.0"},
        "router": {
            "kind": "haproxy",
            "adminSocket": "/run/haproxy/admin.sock",
            "backend": "model",
            "baselineServer": "v1",
            "candidateServer": "v2",
        },
        "prometheus": {"url": "http://127.0.0.1:9090"},
        "policy": "demo",
    },
}


def write(tmp_path: Path, document: Any, name: str = "rollout.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document))
    return path


def problems_of(path: Path) -> dict[str, str]:
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert caught.value.source == str(path) or caught.value.problems
    return {p.path: p.message for p in caught.value.problems}


@pytest.mark.parametrize("policy_file", sorted(POLICY_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_policy_is_valid(policy_file: Path) -> None:
    policy = load_policy(str(policy_file))
    assert policy.steps and policy.alpha < 1


def test_valid_spec_loads_with_named_policy(tmp_path: Path) -> None:
    spec, policy = load_spec(write(tmp_path, VALID_SPEC))
    assert spec.spec.candidate.version == "2.4.0"
    assert policy.name == "demo"
    assert [s.weight for s in policy.steps] == [20, 50]


def test_policy_path_is_relative_to_the_spec_file(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    write(tmp_path / "p", {"steps": [{"weight": 10, "hold": "1m"}]}, "mine.yaml")
    doc = copy.deepcopy(VALID_SPEC)
    doc["spec"]["policy"] = "p/mine.yaml"
    _, policy = load_spec(write(tmp_path, doc))
    assert policy.steps[0].hold == 60.0


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["spec"]["router"].update(kind="traefik"), "spec.router"),
        (lambda d: d["spec"]["candidate"].update(version='2.4.0"} or vector(1) #'), "version"),
        (lambda d: d["spec"]["candidate"].update(version="2.4\n0"), "version"),
        (lambda d: d["spec"]["candidate"].update(version="{2.4}"), "version"),
        (lambda d: d["spec"]["candidate"].update(version="2.3.1"), "spec"),
        (lambda d: d["spec"]["prometheus"].update(url="ftp://x"), "spec.prometheus.url"),
        (lambda d: d["spec"].update(policy="no-such-policy"), "policy"),
        (lambda d: d["spec"].update(replicas=3), "spec.replicas"),
        (lambda d: d.update(kind="Deployment"), "kind"),
    ],
)
def test_bad_spec_names_the_field(tmp_path: Path, mutate: Any, field: str) -> None:
    doc = copy.deepcopy(VALID_SPEC)
    mutate(doc)
    found = problems_of(write(tmp_path, doc))
    assert any(field in path for path in found), found


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"steps": [{"weight": -1, "hold": "1m"}]}, "steps.0.weight"),
        ({"steps": [{"weight": 100, "hold": "1m"}]}, "steps.0.weight"),
        ({"steps": [{"weight": 150, "hold": "1m"}]}, "steps.0.weight"),
        ({"steps": [{"weight": 50, "hold": "1m"}, {"weight": 20, "hold": "1m"}]}, "steps"),
        ({"steps": [{"weight": 10, "hold": "-5s"}]}, "steps.0.hold"),
        ({"steps": [{"weight": 10, "hold": "soon"}]}, "steps.0.hold"),
        ({"steps": []}, "steps"),
        ({"steps": [{"weight": 10, "hold": "1m"}], "alpha": 0}, "alpha"),
        ({"steps": [{"weight": 10, "hold": "1m"}], "alpha": 1.5}, "alpha"),
        ({"steps": [{"weight": 10, "hold": "1m"}], "latency": {"quantile": 1.2}}, "quantile"),
        ({"steps": [{"weight": 10, "hold": "1m"}], "minRequests": 0}, "minRequests"),
        ({"steps": [{"weight": 10, "hold": "1m"}], "onInconclusive": "promote"}, "onInconclusive"),
        ({"steps": [{"weight": 10, "hold": "1m"}], "judge": {"kind": "magic"}}, "judge"),
        ({"steps": [{"weight": 10, "hold": "1m"}], "metrics": {"requests": "a b"}}, "requests"),
        ({"steps": [{"weight": 10, "hold": "1m"}], "alerts": {"action": "page"}}, "alerts.action"),
        ({"steps": [{"weight": 10, "hold": "1m"}], "alerts": {"acton": "pause"}}, "alerts.acton"),
    ],
)
def test_bad_policy_names_the_field(tmp_path: Path, policy: dict[str, Any], field: str) -> None:
    path = write(tmp_path, policy, "policy.yaml")
    with pytest.raises(SpecError) as caught:
        load_policy(str(path))
    paths = [p.path for p in caught.value.problems]
    assert any(field in p for p in paths), paths
    assert str(path) in str(caught.value)


def test_every_problem_is_listed_not_just_the_first(tmp_path: Path) -> None:
    path = write(tmp_path, {"steps": [{"weight": -1, "hold": "-1s"}], "alpha": 2}, "policy.yaml")
    with pytest.raises(SpecError) as caught:
        load_policy(str(path))
    paths = {p.path for p in caught.value.problems}
    assert {"steps.0.weight", "steps.0.hold", "alpha"} <= paths


def test_yaml_bomb_is_refused_before_expansion(tmp_path: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(20)
    )
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb)
    with pytest.raises(SpecError, match="anchors and aliases"):
        load_policy(str(path))


def test_huge_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("steps:\n" + "  # padding\n" * (MAX_FILE_BYTES // 10))
    with pytest.raises(SpecError, match="limit"):
        load_policy(str(path))


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("steps:\n  - weight: 10\n    hold: [1m\n")
    with pytest.raises(SpecError) as caught:
        load_policy(str(path))
    assert caught.value.problems[0].path.startswith("line ")


def test_secret_header_values_stay_out_of_repr(tmp_path: Path) -> None:
    doc = copy.deepcopy(VALID_SPEC)
    doc["spec"]["prometheus"]["headers"] = {"Authorization": "Bearer s3cr3t-token"}
    spec, _ = load_spec(write(tmp_path, doc))
    assert "s3cr3t" not in repr(spec)
    assert "s3cr3t" not in str(spec.spec.prometheus)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30.0), ("2m", 120.0), ("1.5h", 5400.0), ("250ms", 0.25), (7, 7.0)]
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=3),
)
_paths = st.sampled_from(
    [
        ("spec", "model"),
        ("spec", "baseline", "version"),
        ("spec", "candidate", "version"),
        ("spec", "router", "kind"),
        ("spec", "router", "backend"),
        ("spec", "prometheus", "url"),
        ("spec", "prometheus", "timeout"),
        ("metadata", "name"),
        ("apiVersion",),
    ]
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=_paths, value=_junk)
def test_any_mutated_spec_is_either_valid_or_names_a_field(
    tmp_path: Path, path: tuple[str, ...], value: object
) -> None:
    """Whatever a user writes in a field, loading never crashes: it loads or lists problems."""
    doc = copy.deepcopy(VALID_SPEC)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    file = write(tmp_path, doc)
    try:
        spec, _ = load_spec(file)
    except SpecError as exc:
        assert exc.problems and all(p.path and p.message for p in exc.problems)
        return
    # What loads must be safe to put in a PromQL string literal.
    for version in (spec.spec.baseline.version, spec.spec.candidate.version):
        assert not set(version) & set('"{}\\\n\r`')
