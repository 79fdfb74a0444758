"""`nop` is refused at validate: a rollout that moves no traffic and can read no weights
cannot confirm a single step. Judging a candidate without moving traffic is what
`rollout gate` does; `policy validate`, `run` and the controller all say so."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import model_validator

from rollout.routers.base import RouterModel

REFUSAL: Final = (
    "router kind 'nop' moves no traffic and cannot read weights, so a rollout cannot confirm "
    "any step with it: to judge a candidate without moving traffic (a CI gate), run "
    "`rollout gate` instead; to move traffic, name a router that does (see the README's "
    "Routers)"
)


class NopRouterConfig(RouterModel):
    """Known, so that it is refused with a hint rather than as an unknown kind."""

    kind: Literal["nop"]

    @model_validator(mode="after")
    def _refused(self) -> NopRouterConfig:
        raise ValueError(REFUSAL)
