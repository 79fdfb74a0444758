"""The demo's model-server fixture, shared with tests/demo."""

from tests.demo.conftest import start_demo

__all__ = ["start_demo"]
