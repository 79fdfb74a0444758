"""One real healthy stack (v1, v2, HAProxy, Prometheus, load) for every CLI fault test here;
each test starts from everything up, no fault, all traffic on v1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.cli_faults import FaultStack


@pytest.fixture(scope="package")
def fault_stack_once(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    stack = FaultStack(tmp_path_factory.mktemp("fault-stack")).start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def fault_stack(fault_stack_once: FaultStack) -> FaultStack:
    fault_stack_once.reset()
    return fault_stack_once
