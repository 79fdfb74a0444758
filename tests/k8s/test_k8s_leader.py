"""Lease election on the fake API server, on a clock the test moves: a leader stops acting
before a follower may take the lease; bad timings are refused with a message, not an exit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from rollout.k8s.leader import LeaderElector, LeaseLost, LeaseSettings
from tests.support.fake_kube import FakeApiServer


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server


def elector(api: FakeApiServer, identity: str, clock: ManualClock) -> LeaderElector:
    settings = LeaseSettings(
        namespace="default", identity=identity, duration=15, renew_deadline=10, retry_period=2
    )
    return LeaderElector(api.api_client(), settings, monotonic=clock)


def holder(api: FakeApiServer) -> str | None:
    lease = client.CoordinationV1Api(api.api_client()).read_namespaced_lease(
        "rollout-controller", "default"
    )
    return lease.spec.holder_identity if lease.spec else None


def test_a_leader_stops_acting_before_a_follower_may_take_the_lease(api: FakeApiServer) -> None:
    clock = ManualClock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    assert a.try_acquire_or_renew() and a.leading() and holder(api) == "a"
    assert not b.try_acquire_or_renew()  # held: b starts counting from what it saw now
    a.fence()  # a may write

    clock.now += 10  # a has not renewed for its renew deadline: it stops acting
    assert not a.leading()
    with pytest.raises(LeaseLost):
        a.fence()
    assert not b.try_acquire_or_renew()  # but b must still wait: the lease is not expired

    clock.now += 5  # the lease duration since b saw the record: b takes it
    assert b.try_acquire_or_renew() and b.leading() and holder(api) == "b"
    assert not a.try_acquire_or_renew()  # and a, seeing b's new record, waits in turn


def test_renewing_keeps_the_lease_and_a_release_hands_it_over_at_once(api: FakeApiServer) -> None:
    clock = ManualClock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    for _ in range(10):  # renewals every retry period: the record changes, b keeps waiting
        clock.now += 2
        assert a.try_acquire_or_renew() and a.leading()
        assert not b.try_acquire_or_renew()
    a.release()
    assert holder(api) in ("", None)
    assert b.try_acquire_or_renew() and holder(api) == "b"


def test_a_conflicting_write_is_not_leadership(api: FakeApiServer) -> None:
    clock = ManualClock()
    a = elector(api, "a", clock)
    api.fail_next("PUT", r"/leases/rollout-controller$", 409)
    assert a.try_acquire_or_renew()  # created
    clock.now += 2
    assert not a.try_acquire_or_renew()  # the renewal lost a race: not counted
    clock.now += 8
    assert not a.leading()


@pytest.mark.parametrize(
    ("duration", "renew", "retry"), [(10, 10.0, 2.0), (10, 5.0, 5.0), (10, 12.0, 2.0), (10, 5, 0)]
)
def test_timings_that_could_let_two_act_at_once_are_refused(
    duration: int, renew: float, retry: float
) -> None:
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        LeaseSettings(
            namespace="default", duration=duration, renew_deadline=renew, retry_period=retry
        )
