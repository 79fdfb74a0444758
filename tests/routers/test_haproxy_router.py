"""HAProxyRouter against a real HAProxy and two real HTTP backends."""

from __future__ import annotations

import os
import re
import signal
import threading
from collections import Counter
from pathlib import Path

import pytest

from rollout.demo.haproxy import (
    HAProxyLayout,
    RunningHAProxy,
    haproxy_binary,
    render_config,
    start_haproxy,
)
from rollout.demo.procs import ManagedProcess, free_port
from rollout.routers.base import ALL_BASELINE, ALL_CANDIDATE, RouterError, Weights
from rollout.routers.haproxy import HAProxyRouter
from rollout.spec import HAProxyRouterConfig
from tests.routers.conftest import (
    BASELINE_VERSION,
    CANDIDATE_VERSION,
    Backends,
    count_versions,
)


def router_for(haproxy: RunningHAProxy, **changes: object) -> HAProxyRouter:
    config = haproxy.router_config(timeout=2.0).model_copy(update=changes)
    return HAProxyRouter(config)


@pytest.mark.parametrize(
    ("weights", "candidate_answers"),
    [(ALL_BASELINE, 0), (ALL_CANDIDATE, 200), (Weights(80, 20), 40)],
    ids=str,
)
def test_set_weights_splits_traffic_through_haproxy(
    haproxy: RunningHAProxy, weights: Weights, candidate_answers: int
) -> None:
    router = router_for(haproxy)
    router.set_weights(Weights(50, 50))  # start away from the target, so the change is real
    router.set_weights(weights)

    answers = count_versions(haproxy.url, 200)

    assert sum(answers.values()) == answers[BASELINE_VERSION] + answers[CANDIDATE_VERSION]
    # Roundrobin is exact over each cycle of 100 picks; the cycle in progress when the
    # weights changed may shift a request or two.
    assert abs(answers[CANDIDATE_VERSION] - candidate_answers) <= 3, answers
    if weights.candidate in (0, 100):
        assert answers[CANDIDATE_VERSION] == candidate_answers, answers


def test_weights_read_back_as_set(haproxy: RunningHAProxy) -> None:
    router = router_for(haproxy)
    assert router.get_weights() == ALL_BASELINE  # the config's initial weights

    router.set_weights(Weights(70, 30))

    assert router.get_weights() == Weights(70, 30)
    assert router.verify(Weights(70, 30)) is True
    assert router.verify(Weights(80, 20)) is False


def test_tcp_admin_socket_works_like_the_unix_one(haproxy: RunningHAProxy) -> None:
    router = HAProxyRouter(haproxy.router_config(timeout=2.0, tcp=True))

    router.set_weights(Weights(10, 90))

    assert router.verify(Weights(10, 90)) is True
    assert router_for(haproxy).get_weights() == Weights(10, 90)


def test_verify_sees_drift_after_haproxy_restarts(haproxy: RunningHAProxy) -> None:
    router = router_for(haproxy)
    wanted = Weights(20, 80)
    router.set_weights(wanted)
    old_pid = haproxy.pid

    haproxy.restart()  # runtime changes are lost: back to haproxy.cfg's 100/0

    assert haproxy.pid != old_pid
    assert router.verify(wanted) is False
    assert router.get_weights() == ALL_BASELINE
    router.set_weights(wanted)
    assert router.verify(wanted) is True


def test_killed_haproxy_cannot_be_read_or_changed(haproxy: RunningHAProxy) -> None:
    router = router_for(haproxy)
    haproxy.kill()

    assert router.verify(ALL_BASELINE) is None
    with pytest.raises(RouterError, match=re.escape(str(haproxy.admin_socket))):
        router.get_weights()
    with pytest.raises(RouterError, match=r"connection refused|no such socket"):
        router.set_weights(ALL_BASELINE)


def test_missing_socket_names_the_path_and_what_to_check(tmp_path: Path) -> None:
    missing = tmp_path / "admin.sock"
    router = HAProxyRouter(
        HAProxyRouterConfig(
            kind="haproxy",
            admin_socket=str(missing),
            backend="model",
            baseline_server="baseline",
            candidate_server="candidate",
        )
    )

    with pytest.raises(RouterError) as error:
        router.set_weights(ALL_CANDIDATE)

    assert str(missing) in str(error.value)
    assert "stats socket" in str(error.value)
    assert router.verify(ALL_CANDIDATE) is None


def test_nothing_listening_on_tcp_address_is_a_router_error() -> None:
    router = HAProxyRouter(
        HAProxyRouterConfig(
            kind="haproxy",
            admin_socket=f"127.0.0.1:{free_port()}",
            backend="model",
            baseline_server="baseline",
            candidate_server="candidate",
        )
    )

    with pytest.raises(RouterError, match="connection refused"):
        router.get_weights()


def test_unknown_server_is_refused_with_the_field_to_fix(haproxy: RunningHAProxy) -> None:
    router = router_for(haproxy, baseline_server="blue")

    with pytest.raises(RouterError) as error:
        router.set_weights(Weights(60, 40))

    assert "No such server" in str(error.value)
    assert "baselineServer ('blue')" in str(error.value)
    assert router.verify(Weights(60, 40)) is None


def test_unknown_backend_is_refused(haproxy: RunningHAProxy) -> None:
    router = router_for(haproxy, backend="models")

    with pytest.raises(RouterError, match=r"No such backend.*router\.backend"):
        router.get_weights()


def test_socket_without_admin_level_is_refused(tmp_path: Path, backends: Backends) -> None:
    layout = HAProxyLayout(
        port=free_port(),
        baseline_address=backends.baseline.address,
        candidate_address=backends.candidate.address,
        admin_socket=tmp_path / "user.sock",
    )
    config = tmp_path / "haproxy.cfg"
    config.write_text(render_config(layout).replace("level admin", "level user"))
    haproxy = RunningHAProxy(layout, config, _haproxy_process(config, tmp_path)).start()
    try:
        router = router_for(haproxy)
        with pytest.raises(RouterError, match=r"Permission denied.*level admin"):
            router.set_weights(ALL_CANDIDATE)
        assert router.get_weights() == ALL_BASELINE  # nothing moved
    finally:
        haproxy.stop()


def test_unanswering_haproxy_times_out(haproxy: RunningHAProxy) -> None:
    router = router_for(haproxy, timeout=0.5)
    os.kill(haproxy.pid, signal.SIGSTOP)  # our own pid: it accepts nothing, answers nothing
    try:
        with pytest.raises(RouterError, match=r"no answer .* within 0.5s"):
            router.set_weights(ALL_CANDIDATE)
    finally:
        os.kill(haproxy.pid, signal.SIGCONT)


def test_flipping_all_traffic_back_and_forth_never_leaves_haproxy_without_a_server(
    haproxy: RunningHAProxy,
) -> None:
    router = router_for(haproxy)
    answers: Counter[str] = Counter()
    done = threading.Event()

    def traffic() -> None:
        while not done.is_set():
            answers.update(count_versions(haproxy.url, 20))

    client = threading.Thread(target=traffic)
    client.start()
    try:
        for _ in range(200):
            router.set_weights(ALL_CANDIDATE)
            router.set_weights(ALL_BASELINE)
    finally:
        done.set()
        client.join(timeout=30)

    assert set(answers) <= {BASELINE_VERSION, CANDIDATE_VERSION}, answers
    assert sum(answers.values()) > 0


def _haproxy_process(config: Path, work_dir: Path) -> ManagedProcess:
    argv = [haproxy_binary(), "-f", str(config)]
    return ManagedProcess("haproxy", argv, work_dir / "haproxy.log", cwd=work_dir)


def test_start_haproxy_puts_a_deep_socket_in_a_short_dir(
    tmp_path: Path, backends: Backends
) -> None:
    deep = tmp_path.joinpath(*["nested-directory"] * 6)
    haproxy = start_haproxy(deep, backends.baseline.address, backends.candidate.address)
    short_dir = haproxy.admin_socket.parent
    try:
        assert (deep / "haproxy.cfg").is_file()
        assert router_for(haproxy).get_weights() == ALL_BASELINE
    finally:
        haproxy.stop()
    assert not haproxy.alive()
    assert not short_dir.exists()
