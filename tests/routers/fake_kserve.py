"""KServe's controller for the tests, as far as canary traffic goes (Serverless mode).

Each new predictor spec (anything but canaryTrafficPercent changed) is a new revision.
KServe splits traffic between the latest revision (canaryTrafficPercent of it) and the last
one rolled out at 100%; a latest revision at 100% (or no percent set) becomes the rolled-out
one. `sync()` writes what the real controller writes once Knative has routed the spec:
`status.components.predictor` (revisions, `traffic` per revision) and `observedGeneration`,
through the status subresource. Until `sync()` runs, the status is the previous spec's:
that is the lag a router's read-back has to wait out.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from rollout.routers.kserve import INFERENCE_SERVICE
from tests.routers.kube_bench import Objects
from tests.support.fake_kube import FakeApiServer


class FakeKServe:
    def __init__(self, api: FakeApiServer, namespace: str, name: str) -> None:
        self.objects = Objects(api, namespace)
        self.name = name
        self.revisions: list[tuple[str, str]] = []  # (revision name, predictor spec)
        self.rolled_out: str | None = None
        self.previous: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sync(self) -> dict[str, Any]:
        """Reconcile once: the status for the current spec. Returns the object written."""
        obj = self.objects.get(INFERENCE_SERVICE, self.name)
        predictor = dict(obj["spec"]["predictor"])
        percent = predictor.pop("canaryTrafficPercent", None)
        template = json.dumps(predictor, sort_keys=True)
        if not self.revisions or self.revisions[-1][1] != template:
            self.revisions.append(
                (f"{self.name}-predictor-{len(self.revisions) + 1:05d}", template)
            )
        latest = self.revisions[-1][0]
        if self.rolled_out is None:
            self.rolled_out = latest  # the first revision takes all traffic
        if latest != self.rolled_out and (percent is None or percent == 100):
            self.previous, self.rolled_out = self.rolled_out, latest
        if latest == self.rolled_out:
            traffic = [_target(latest, 100, latest=True)]
        else:
            share = int(percent or 0)
            traffic = [_target(latest, share, latest=True), _target(self.rolled_out, 100 - share)]
        status = {
            "observedGeneration": obj["metadata"]["generation"],
            "components": {
                "predictor": {
                    "latestCreatedRevision": latest,
                    "latestReadyRevision": latest,
                    "latestRolledoutRevision": self.rolled_out,
                    "previousRolledoutRevision": self.previous,
                    "traffic": traffic,
                }
            },
            "conditions": [{"type": "Ready", "status": "True"}],
        }
        return self.objects.merge_patch(
            INFERENCE_SERVICE, self.name, {"status": status}, status=True
        )

    def run(self, every: float = 0.2) -> FakeKServe:
        """Reconcile in a thread, every `every` seconds, as the real one does on changes."""

        def loop() -> None:
            while not self._stop.wait(every):
                self.sync()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def _target(revision: str, percent: int, latest: bool = False) -> dict[str, Any]:
    return {
        "revisionName": revision,
        "percent": percent,
        "latestRevision": latest,
        "tag": "latest" if latest else "prev",
    }
