"""The pure parts of the HAProxy router and launcher, with plain values."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollout.demo.haproxy import HAProxyLayout, render_config
from rollout.routers.base import Weights, relative_share
from rollout.routers.haproxy import AdminAddress, HAProxyRouterConfig, plan_weight_changes

CONFIG = HAProxyRouterConfig(
    kind="haproxy",
    admin_socket="/run/haproxy/admin.sock",
    backend="model",
    baseline_server="blue",
    candidate_server="green",
)


@pytest.mark.parametrize(
    ("weights", "plan"),
    [
        (Weights(0, 100), [("green", 100), ("blue", 0)]),
        (Weights(100, 0), [("blue", 100), ("green", 0)]),
        (Weights(20, 80), [("green", 80), ("blue", 20)]),
        (Weights(90, 10), [("blue", 90), ("green", 10)]),
    ],
    ids=str,
)
def test_larger_weight_is_set_first_so_no_step_has_both_servers_at_zero(
    weights: Weights, plan: list[tuple[str, int]]
) -> None:
    assert plan_weight_changes(CONFIG, weights) == plan


@pytest.mark.parametrize(
    ("raw", "share"),
    [
        ((80, 20), Weights(80, 20)),
        ((1, 1), Weights(50, 50)),
        ((160, 40), Weights(80, 20)),
        ((256, 1), Weights(99, 1)),  # a server that gets traffic never shows 0%
        ((1, 256), Weights(1, 99)),
        ((0, 7), Weights(0, 100)),
    ],
)
def test_raw_haproxy_weights_read_as_traffic_share(raw: tuple[int, int], share: Weights) -> None:
    assert relative_share(*raw) == share


def test_both_servers_at_zero_has_no_share() -> None:
    with pytest.raises(ValueError, match="both weights are 0"):
        relative_share(0, 0)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("/run/haproxy/admin.sock", AdminAddress(path="/run/haproxy/admin.sock")),
        ("unix@/x/admin.sock", AdminAddress(path="/x/admin.sock")),
        ("admin.sock", AdminAddress(path="admin.sock")),
        ("127.0.0.1:9999", AdminAddress(host="127.0.0.1", port=9999)),
        ("ipv4@haproxy.internal:9999", AdminAddress(host="haproxy.internal", port=9999)),
        ("./sock:1", AdminAddress(path="./sock:1")),
    ],
)
def test_admin_socket_is_a_path_or_host_and_port(text: str, address: AdminAddress) -> None:
    assert AdminAddress.parse(text) == address


def test_config_declares_servers_weights_and_admin_level() -> None:
    layout = HAProxyLayout(
        port=8080,
        baseline_address="127.0.0.1:9001",
        candidate_address="127.0.0.1:9002",
        admin_socket=Path("/tmp/h/admin.sock"),
        weights=Weights(70, 30),
        admin_port=9003,
    )

    config = render_config(layout)

    assert "bind 127.0.0.1:8080\n" in config
    assert "balance roundrobin\n" in config
    assert "server baseline 127.0.0.1:9001 weight 70\n" in config
    assert "server candidate 127.0.0.1:9002 weight 30\n" in config
    assert 'stats socket "/tmp/h/admin.sock" level admin\n' in config
    assert "stats socket ipv4@127.0.0.1:9003 level admin\n" in config
    assert "daemon" not in config  # foreground: the pid we start is the one we stop
    assert " check" not in config  # no health checks: the weights alone decide
