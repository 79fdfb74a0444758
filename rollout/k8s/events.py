"""Kubernetes Events about a ModelRollout: one per step, promotion, rollback, pause and abort.

`notices(happened)` is pure: what the reconciler's happenings mean to a person watching
`kubectl describe` or `kubectl get events`. `EventRecorder` writes them (core/v1 Events).
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from kubernetes.client.exceptions import ApiException

from rollout.k8s.api import API_VERSION, RolloutApi, api_reason
from rollout.k8s.crd import KIND
from rollout.k8s.status import stamp
from rollout.reconcile import Advanced, Happening, ReportDone
from rollout.state import Phase, RolloutState

COMPONENT: Final = "rollout-controller"
NORMAL: Final = "Normal"
WARNING: Final = "Warning"
_DECIDED: Final = {
    Phase.PROMOTED: (NORMAL, "Promoted"),
    Phase.ROLLED_BACK: (WARNING, "RolledBack"),
    Phase.PAUSED: (WARNING, "Paused"),
    Phase.ABORTED: (WARNING, "Aborted"),
}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notice:
    type: str  # Normal or Warning
    reason: str  # CamelCase: Step, Promoted, RolledBack, Paused, Aborted, InvalidSpec, ...
    message: str


def _step_notice(state: RolloutState) -> Notice:
    return Notice(
        NORMAL,
        "Step",
        f"step {state.step + 1}: weights {state.desired} (baseline/candidate), "
        f"{state.target.candidate} against {state.target.baseline}",
    )


def notices(happened: Iterable[Happening], before: RolloutState | None) -> list[Notice]:
    """The Events a reconcile's happenings call for; `before` is the state it started from."""
    found: list[Notice] = []
    phase = before.phase if before is not None else None
    step = before.step if before is not None else None
    for happening in happened:
        if isinstance(happening, ReportDone):
            ids = [e.trace_id for e in happening.report.evidence]
            if ids:
                found.append(
                    Notice(NORMAL, "Evidence", f"trace IDs of slow or failed: {', '.join(ids)}")
                )
            continue
        assert isinstance(happening, Advanced)
        state = happening.state
        if state.phase is Phase.PROGRESSING and (
            phase is not Phase.PROGRESSING or state.step != step
        ):
            found.append(_step_notice(state))
        elif state.phase in _DECIDED and state.phase is not phase:
            kind, reason = _DECIDED[state.phase]
            found.append(Notice(kind, reason, f"weights {state.desired}: {state.reason}"))
        phase, step = state.phase, state.step
    return found


class EventRecorder:
    """Writes Notices as core/v1 Events of the resource; a failure is logged, never raised
    (an Event is a courtesy: the status holds the truth)."""

    def __init__(
        self,
        api: RolloutApi,
        clock: Callable[[], float],
        fence: Callable[[], None],
        host: str = "",
    ) -> None:
        self.api = api
        self.clock = clock
        self.fence = fence
        self.host = host or os.environ.get("HOSTNAME", "")
        self._serial = itertools.count(1)

    def record(self, obj: Mapping[str, Any], notice: Notice) -> None:
        self.fence()
        meta = obj["metadata"]
        now = stamp(self.clock())
        serial = f"{int(self.clock() * 1000):x}{next(self._serial):x}"
        event = {
            "metadata": {"name": f"{meta['name']}.{serial}", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": notice.type,
            "reason": notice.reason,
            "message": notice.message[:1024],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": COMPONENT, "host": self.host} if self.host else None,
            "reportingComponent": COMPONENT,
            "reportingInstance": self.host or COMPONENT,
        }
        try:
            self.api.create_event(meta["namespace"], {k: v for k, v in event.items() if v})
        except ApiException as exc:
            log.warning(
                "event %s for %s not written: %s", notice.reason, meta["name"], api_reason(exc)
            )
