"""The report of one decision: everything a person needs to follow why.

Built by the driver (a rollout's promotion or rollback) and by the gate. The
renderers (JSON, Markdown, JUnit XML, terminal) live beside this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rollout.analysis.observation import Observation, Target
from rollout.analysis.verdict import Judgement
from rollout.routers.base import Weights
from rollout.spec import Policy


@dataclass(frozen=True)
class SpanTiming:
    name: str  # e.g. "model.infer"
    duration_seconds: float


@dataclass(frozen=True)
class TraceEvidence:
    """A request an exemplar names: one of the candidate's slow or failed ones, or a typical
    one of either version."""

    trace_id: str
    version: str
    # "slow" (above the baseline's quantile x (1 + tolerance)), "error", or "typical" (near
    # the median latency of its version's exemplars)
    kind: str
    latency_seconds: float | None
    timestamp: float
    link: str  # from the policy's trace-link template
    spans: tuple[SpanTiming, ...] = ()  # span breakdown when the trace could be read back


@dataclass(frozen=True)
class WeightChange:
    at: float
    weights: Weights
    reason: str


@dataclass(frozen=True)
class Report:
    kind: str  # "rollout" or "gate"
    name: str  # rollout name, or "gate"
    target: Target
    decision: str  # rollout: promoted|rolled_back|paused|aborted; gate: pass|fail|inconclusive
    reason: str
    policy: Policy
    judgement: Judgement | None
    observations: tuple[Observation, ...]  # every look, each with the queries it ran
    evidence: tuple[TraceEvidence, ...] = ()
    weight_changes: tuple[WeightChange, ...] = ()
    started_at: float = 0.0
    finished_at: float = 0.0
    notes: tuple[str, ...] = field(default=())  # e.g. outages, drift repaired, evidence missing
    policy_source: str = ""  # how the policy was named: "default", "policies/mine.yaml", ...

    @property
    def policy_name(self) -> str:
        """The policy's own `name`, else what it was loaded as (a file without `name:` is not
        "custom" to the person who wrote it)."""
        if self.policy.name == "custom" and self.policy_source:
            return self.policy_source
        return self.policy.name
