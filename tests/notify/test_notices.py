"""Which state changes call for a notice (pure), and the Slack message's escaping."""

from __future__ import annotations

import json
from dataclasses import replace

from rollout.analysis.observation import Target
from rollout.evidence.report import WeightChange
from rollout.notify.notices import notice_kind
from rollout.notify.payloads import slack_request
from rollout.routers.base import ALL_BASELINE, Weights
from rollout.spec import NoticeKind
from rollout.state import Phase, RolloutState
from tests.notify.test_sender import NOTICE

W20, W50 = Weights.candidate_share(20), Weights.candidate_share(50)
START = RolloutState.new("fraud", Target("fraud-detector", "v1", "v2"), "digest", 100.0)


def progressing(*changes: Weights, confirmed: bool = True) -> RolloutState:
    return replace(
        START,
        phase=Phase.PROGRESSING,
        desired=changes[-1] if changes else W20,
        confirmed=confirmed,
        weight_changes=tuple(WeightChange(at=100.0 + i, weights=w, reason="") for i, w in
                             enumerate(changes)),
    )  # fmt: skip


def test_a_step_is_announced_when_its_weights_are_confirmed_not_when_asked_for() -> None:
    asked = progressing(confirmed=False)
    assert notice_kind(START, asked) is None
    assert notice_kind(asked, progressing(W20)) is NoticeKind.STEP
    assert notice_kind(progressing(W20), progressing(W20, W50)) is NoticeKind.STEP


def test_a_drift_repaired_is_not_a_new_step() -> None:
    assert notice_kind(progressing(W20, confirmed=False), progressing(W20, W20)) is None


def test_a_decision_is_announced_once() -> None:
    before = progressing(W20)
    rolled_back = replace(before, phase=Phase.ROLLED_BACK, decided_at=200.0, desired=ALL_BASELINE)
    assert notice_kind(before, rolled_back) is NoticeKind.ROLLED_BACK
    confirmed = replace(rolled_back, weight_changes=(*rolled_back.weight_changes,))
    assert notice_kind(rolled_back, confirmed) is None  # the same decision, settling
    aborted = replace(rolled_back, phase=Phase.ABORTED)
    paused = replace(before, phase=Phase.PAUSED, decided_at=150.0)
    assert notice_kind(paused, aborted) is NoticeKind.ABORTED


def test_a_resumed_rollout_is_not_announced_again() -> None:
    decided = replace(progressing(W20), phase=Phase.PROMOTED, decided_at=200.0)
    assert notice_kind(decided, decided) is None
    assert notice_kind(None, decided) is None


def test_slack_text_escapes_its_control_characters() -> None:
    notice = replace(NOTICE, reason="p95 <b> & <!channel>")
    text = json.loads(slack_request(notice)[0])["text"]
    assert "&lt;!channel&gt;" in text and "&amp;" in text and "<!channel>" not in text
    assert text.startswith(":rotating_light: *ml/fraud*")
