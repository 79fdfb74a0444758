"""The router of gate mode: traffic is not ours to move.

A CI gate (like an Argo Rollouts analysis run or Flagger's webhook gate) only
judges; the deployment system moves the traffic. So this router accepts every
`set_weights` and does nothing, and it never claims to know the weights:
`get_weights` raises RouterError and `verify` answers None (cannot be read back).
It keeps no state, so nothing it says can be mistaken for a real read-back.
"""

from __future__ import annotations

from rollout.routers.base import RouterError, Weights


class NopRouter:
    """`TrafficRouter` that moves nothing and reads nothing."""

    def __repr__(self) -> str:
        return "NopRouter()"

    def get_weights(self) -> Weights:
        raise RouterError(
            "router kind 'nop' (gate mode): traffic is not ours to move, so its weights "
            "cannot be read; use a router such as 'haproxy' to shift traffic"
        )

    def set_weights(self, weights: Weights) -> None:
        """Nothing to do: whoever owns the traffic acts on the gate's verdict."""

    def verify(self, weights: Weights) -> bool | None:
        return None
