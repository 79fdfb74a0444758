"""Traffic routers, one module per kind; `registry.py` lists them and builds them."""

from rollout.routers.registry import build_router, router_kinds

__all__ = ["build_router", "router_kinds"]
