"""Shared fixtures: one real Prometheus on the standard synthetic backfill (tests/support), and
the driver's real HAProxy stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.backfill import BackfilledPrometheus, backfilled_prometheus, past_end
from tests.support.replay import Stack, running_stack
from tests.support.scenarios import MINUTES, STANDARD_MODELS
from tests.support.synthetic import synthesize


@pytest.fixture(scope="session")
def synthetic_prometheus(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[BackfilledPrometheus]:
    """Prometheus (started here, stopped by its pid) on `STANDARD_MODELS` ending >= 3 h ago."""
    dataset = synthesize(STANDARD_MODELS, end=past_end(), minutes=MINUTES)
    backfilled = backfilled_prometheus(dataset, tmp_path_factory.mktemp("synthetic-prometheus"))
    try:
        yield backfilled
    finally:
        backfilled.stop()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """A real HAProxy at 100/0 in front of a baseline and a candidate answering their version."""
    with running_stack(tmp_path / "haproxy") as running:
        yield running
