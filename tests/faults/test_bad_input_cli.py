"""`rollout run` with invalid spec or policy files, against a real HAProxy carrying live
traffic at 50/50: exit 3, the field named on stderr, no state, and the weights unchanged
(read back through the admin socket, and counted in the answers)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollout.demo.haproxy import RunningHAProxy, start_haproxy
from rollout.routers.base import Weights
from rollout.routers.haproxy import HAProxyRouter
from rollout.spec import MAX_FILE_BYTES
from tests.support.bad_input import CASES, valid_files, yaml_bomb
from tests.support.cli_faults import ROOT
from tests.support.httpserve import serve_text

pytestmark = pytest.mark.e2e
HALF = Weights.candidate_share(50)
RUN = (sys.executable, "-m", "rollout.cli", "run")


@pytest.fixture(scope="module")
def haproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHAProxy]:
    """One HAProxy for the module, both versions answering, weights 50/50."""
    baseline, candidate = serve_text("v1", "text/plain"), serve_text("v2", "text/plain")
    workdir = tmp_path_factory.mktemp("haproxy")
    try:
        with start_haproxy(workdir, baseline.address, candidate.address, HALF) as running:
            yield running
    finally:
        baseline.stop()
        candidate.stop()


def refused(haproxy: RunningHAProxy, tmp_path: Path, spec: Any, policy: Any) -> str:
    """Run `rollout run` on the files; assert the refusal moved nothing; its stderr."""
    for name, document in (("rollout.yaml", spec), ("policy.yaml", policy)):
        path = tmp_path / name
        if isinstance(document, str):
            path.write_text(document)
        else:
            path.write_text(yaml.safe_dump(document, sort_keys=False))
    state_dir = tmp_path / "state"
    result = subprocess.run(
        [*RUN, str(tmp_path / "rollout.yaml"), "--state-dir", str(state_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert not state_dir.exists() or not any(state_dir.iterdir())
    assert HAProxyRouter(haproxy.router_config()).verify(HALF) is True  # raw weights 50 and 50
    with httpx.Client(base_url=haproxy.url, timeout=5.0) as client:
        answers = Counter(client.get("/").text for _ in range(40))
    assert answers == Counter({"v1": 20, "v2": 20})  # roundrobin at 50/50 alternates
    return result.stderr


@pytest.mark.parametrize("case", list(CASES))
def test_an_invalid_file_exits_3_names_the_field_and_moves_no_traffic(
    haproxy: RunningHAProxy, tmp_path: Path, case: str
) -> None:
    which, field, mutate = CASES[case]
    spec, policy = valid_files(haproxy)
    mutate(spec, policy)
    stderr = refused(haproxy, tmp_path, spec, policy)
    assert field in stderr, stderr
    assert str(tmp_path / ("rollout.yaml" if which == "spec" else "policy.yaml")) in stderr


def test_a_yaml_bomb_is_refused_before_it_expands(haproxy: RunningHAProxy, tmp_path: Path) -> None:
    _, policy = valid_files(haproxy)
    stderr = refused(haproxy, tmp_path, yaml_bomb(), policy)
    assert "anchors and aliases" in stderr and "line 1" in stderr


def test_a_huge_policy_file_is_refused_unread(haproxy: RunningHAProxy, tmp_path: Path) -> None:
    spec, policy = valid_files(haproxy)
    huge = yaml.safe_dump(policy) + "# padding\n" * (MAX_FILE_BYTES // 10 + 1)
    stderr = refused(haproxy, tmp_path, spec, huge)
    assert f"over the {MAX_FILE_BYTES} limit" in stderr


_BAD_VALUES: dict[tuple[str, ...], st.SearchStrategy[Any]] = {
    ("policy", "steps", "0", "weight"): st.one_of(
        st.integers(max_value=-1), st.integers(min_value=100), st.text(alphabet="abxyz", max_size=4)
    ),
    ("policy", "alpha"): st.one_of(
        st.floats(max_value=0.0), st.floats(min_value=1.0), st.just("0.05x")
    ),
    ("policy", "steps", "0", "hold"): st.one_of(
        st.floats(max_value=-0.001, allow_infinity=False), st.just("-1m"), st.just("soon")
    ),
    ("spec", "spec", "candidate", "version"): st.tuples(
        st.text(alphabet="v0123.", max_size=4), st.sampled_from(['"', "{", "}", "\n", "'\"}"])
    ).map("".join),
}


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_sampled_invalid_values_exit_3_and_move_no_traffic(
    haproxy: RunningHAProxy, tmp_path: Path, data: st.DataObject
) -> None:
    where = data.draw(st.sampled_from(sorted(_BAD_VALUES)))
    value = data.draw(_BAD_VALUES[where])
    spec, policy = valid_files(haproxy)
    node: Any = {"policy": policy, "spec": spec}[where[0]]
    for key in where[1:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[where[-1]] = value
    stderr = refused(haproxy, tmp_path, spec, policy)
    assert ".".join(where[1:]) in stderr, stderr
