"""`rollout status/list/promote/retry/abort` on ModelRollout resources, like `kubectl argo
rollouts`: they read the status the controller writes, and a request is an annotation the
controller answers in `status.request` (accepted with the state it changes, or refused).

Exit codes as the local verbs': status 0 promoted, 1 rolled back or aborted, 2 paused,
3 no such rollout or its spec is refused, 4 still progressing when --timeout ran out;
promote/retry/abort 0 accepted, 3 refused (nothing to do) or no such rollout, 4 no controller
answered in time.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException
from rich.console import Console

from rollout.exit_codes import ExitCode
from rollout.k8s.api import (
    NOT_FOUND,
    REQUEST_ANNOTATION,
    KubeConfigError,
    Object,
    RolloutApi,
    api_reason,
    config,
    connect,
)
from rollout.k8s.resource import Action, Request, refusal
from rollout.k8s.status import INVALID_SPEC, state_of
from rollout.state import StateError

DECIDED_EXIT = {
    "Promoted": ExitCode.PROMOTED,
    "RolledBack": ExitCode.ROLLED_BACK,
    "Aborted": ExitCode.ROLLED_BACK,
    "Paused": ExitCode.PAUSED,
}
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class Cluster:
    """Where the resources are: a kubeconfig (or in-cluster), a context, a namespace."""

    kubeconfig: Path | None = None
    context: str | None = None
    namespace: str | None = None

    def api(self) -> RolloutApi:
        return RolloutApi(connect(self.kubeconfig, self.context))

    def default_namespace(self) -> str:
        """-n, else the kubeconfig context's namespace, else the pod's, else 'default'."""
        if self.namespace:
            return self.namespace
        try:
            path = str(self.kubeconfig) if self.kubeconfig else None
            _, active = config.list_kube_config_contexts(config_file=path)
            found = (active or {}).get("context", {}).get("namespace")
            if found:
                return str(found)
        except (config.ConfigException, OSError):
            if SERVICE_ACCOUNT_NAMESPACE.is_file():
                return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        return "default"


def _fmt(value: Any, scale: float, unit: str) -> str:
    return "n/a" if not isinstance(value, int | float) else f"{value * scale:.1f}{unit}"


def describe(obj: Mapping[str, Any]) -> list[str]:
    """What `rollout status` prints for a resource."""
    meta, spec = obj["metadata"], obj.get("spec") or {}
    status = obj.get("status") or {}
    baseline = (spec.get("baseline") or {}).get("version", "?")
    candidate = (spec.get("candidate") or {}).get("version", "?")
    lines = [
        f"rollout {meta['name']} ({meta['namespace']}): {spec.get('model', '?')} "
        f"{baseline} -> {candidate}"
    ]
    phase = status.get("phase", "not picked up by a controller yet")
    reason = status.get("reason")
    lines.append(f"  phase: {phase}" + (f" ({reason})" if reason else ""))
    if "step" in status:
        confirmed = "confirmed by read-back" if status.get("weightsConfirmed") else "not confirmed"
        lines.append(
            f"  step: {status['step']}/{status.get('steps', '?')}, weights "
            f"{status.get('weights')} baseline/candidate ({confirmed})"
        )
    analysis = status.get("analysis") or {}
    look = analysis.get("latestLook")
    if look:
        lines.append(
            f"  latest look ({look['start']} .. {look['end']}): P95 {baseline} "
            f"{_fmt(look.get('baselineP95'), 1000.0, ' ms')}, {candidate} "
            f"{_fmt(look.get('candidateP95'), 1000.0, ' ms')}; errors {baseline} "
            f"{_fmt(look.get('baselineErrorRate'), 100.0, '%')}, {candidate} "
            f"{_fmt(look.get('candidateErrorRate'), 100.0, '%')}"
        )
    if analysis:
        lines.append(f"  judgement ({analysis['looks']} looks): {analysis['verdict']}: "
                     f"{analysis.get('reason', '')}")  # fmt: skip
    if status.get("message"):
        lines.append(f"  now: {status['message']}")
    for condition in status.get("conditions") or []:
        bad = condition["status"] == ("False" if "Available" in condition["type"] else "True")
        if bad and condition["type"] != "Progressing":
            text = condition.get("message", "").replace("\n", "\n      ")
            lines.append(f"  {condition['type']}: {text}")
    if status.get("traceIds"):
        lines.append(f"  trace IDs: {', '.join(status['traceIds'])}")
    request = status.get("request")
    if request:
        answer = "accepted" if request.get("accepted") else "refused"
        lines.append(f"  last request: {request['action']} {answer}: {request.get('message')}")
    return lines


def _settled(status: Mapping[str, Any]) -> bool:
    phase = status.get("phase")
    return phase == "Paused" or (phase in DECIDED_EXIT and bool(status.get("weightsConfirmed")))


def _get(api: RolloutApi, namespace: str, name: str, console: Console) -> Object | None:
    try:
        return api.get(namespace, name)
    except ApiException as exc:
        if exc.status == NOT_FOUND:
            console.print(f"no such rollout: ModelRollout {namespace}/{name}", markup=False)
            return None
        raise


def status(
    cluster: Cluster,
    name: str,
    *,
    watch: bool,
    timeout: float,
    console: Console,
    poll: float = 1.0,
    now: Callable[[], float] = time.time,
) -> ExitCode:
    def go() -> ExitCode:
        api, namespace = cluster.api(), cluster.default_namespace()
        deadline = now() + timeout if timeout > 0 else math.inf
        shown: list[str] = []
        while True:
            obj = _get(api, namespace, name, console)
            if obj is None:
                return ExitCode.BAD_INPUT
            lines = describe(obj)
            if not shown or (watch and lines != shown):
                console.print("\n".join(lines), markup=False, highlight=False)
            shown = lines
            found = obj.get("status") or {}
            phase = found.get("phase")
            if phase == INVALID_SPEC:
                console.print("its spec is refused: fix it (exit 3)", markup=False)
                return ExitCode.BAD_INPUT
            if _settled(found):
                code = DECIDED_EXIT[str(phase)]
                console.print(f"{phase} (exit {int(code)})", markup=False)
                return code
            if now() >= deadline:
                console.print(f"still {phase} after {timeout:g}s (exit 4)", markup=False)
                return ExitCode.INFRASTRUCTURE
            time.sleep(poll)

    return _guarded(go, console)


def list_rollouts(cluster: Cluster, all_namespaces: bool, console: Console) -> ExitCode:
    def go() -> ExitCode:
        api = cluster.api()
        items, _ = api.list_all(None if all_namespaces else cluster.default_namespace())
        if not items:
            console.print("no ModelRollouts", markup=False)
            return ExitCode.PROMOTED
        header = ("NAMESPACE", "NAME", "PHASE", "BASELINE", "CANDIDATE", "STEP", "WEIGHTS")
        rows = [header]
        for obj in items:
            meta, spec, found = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
            rows.append(
                (
                    meta["namespace"],
                    meta["name"],
                    str(found.get("phase", "-")),
                    str((spec.get("baseline") or {}).get("version", "-")),
                    str((spec.get("candidate") or {}).get("version", "-")),
                    str(found.get("step", "-")),
                    str(found.get("weights", "-")),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        for row in rows:
            cells = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            console.print(cells.rstrip(), markup=False, highlight=False)
        return ExitCode.PROMOTED

    return _guarded(go, console)


def request(
    cluster: Cluster,
    name: str,
    action: Action,
    *,
    reason: str,
    full: bool = False,
    timeout: float = 60.0,
    console: Console,
    poll: float = 0.5,
) -> ExitCode:
    """Ask the controller to promote, abort or retry; wait for its answer in the status."""

    def go() -> ExitCode:
        api, namespace = cluster.api(), cluster.default_namespace()
        obj = _get(api, namespace, name, console)
        if obj is None:
            return ExitCode.BAD_INPUT
        found = obj.get("status") or {}
        if found.get("phase") == INVALID_SPEC:
            why: str | None = "its spec is refused (InvalidSpec): fix the spec first"
        else:
            try:
                why = refusal(action, state_of(found, f"ModelRollout {namespace}/{name}"))
            except StateError as exc:
                why = str(exc)
        if why is not None:
            console.print(f"cannot {action} {namespace}/{name}: {why}", markup=False)
            return ExitCode.BAD_INPUT
        asked = Request(uuid.uuid4().hex, action, reason, full)
        patch = {"metadata": {"annotations": {REQUEST_ANNOTATION: asked.annotation()}}}
        api.merge_patch(namespace, name, patch)
        console.print(f"asked the controller to {action} {namespace}/{name}", markup=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(poll)
            obj = _get(api, namespace, name, console)
            if obj is None:
                return ExitCode.BAD_INPUT
            answer = (obj.get("status") or {}).get("request") or {}
            if answer.get("id") == asked.id:
                if answer.get("accepted"):
                    console.print(f"{action}: accepted", markup=False)
                    return ExitCode.PROMOTED
                console.print(f"{action}: {answer.get('message')}", markup=False)
                return ExitCode.BAD_INPUT
        console.print(
            f"no controller answered within {timeout:g}s: is `rollout controller` running and "
            f"watching namespace {namespace}? The request stays on the resource (exit 4)",
            markup=False,
        )
        return ExitCode.INFRASTRUCTURE

    return _guarded(go, console)


def _guarded(go: Callable[[], ExitCode], console: Console) -> ExitCode:
    try:
        return go()
    except KubeConfigError as exc:
        console.print(f"cannot reach the cluster: {exc}", markup=False)
        return ExitCode.BAD_INPUT
    except ApiException as exc:
        console.print(f"the Kubernetes API failed: {api_reason(exc)}", markup=False)
        return ExitCode.INFRASTRUCTURE
