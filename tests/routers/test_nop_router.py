"""Gate mode's router: moves nothing, claims nothing."""

from __future__ import annotations

import pytest

from rollout.routers.base import ALL_BASELINE, ALL_CANDIDATE, RouterError, Weights
from rollout.routers.nop import NopRouter


def test_set_weights_accepts_every_change_and_keeps_nothing() -> None:
    router = NopRouter()

    router.set_weights(ALL_CANDIDATE)
    router.set_weights(ALL_BASELINE)

    assert router.verify(ALL_BASELINE) is None  # what it was told is no read-back


def test_weights_cannot_be_read() -> None:
    with pytest.raises(RouterError, match="not ours to move"):
        NopRouter().get_weights()


@pytest.mark.parametrize("weights", [ALL_BASELINE, Weights(50, 50), ALL_CANDIDATE], ids=str)
def test_verify_never_claims_a_state(weights: Weights) -> None:
    assert NopRouter().verify(weights) is None
