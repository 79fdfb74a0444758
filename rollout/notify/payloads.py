"""The bytes a notice goes out as (pure): a generic JSON body, optionally signed with
HMAC-SHA256, and a Slack incoming-webhook message.

The signature follows the common webhook convention (GitHub's `X-Hub-Signature-256`):
`X-Rollout-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>`. A receiver
recomputes it over the raw body with the shared secret and compares in constant time;
`X-Rollout-Delivery` repeats the notice's id, the same on every retry, to drop duplicates.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from rollout.notify.notices import Notice
from rollout.spec import NoticeKind

SIGNATURE_HEADER = "X-Rollout-Signature"
DELIVERY_HEADER = "X-Rollout-Delivery"
EVENT_HEADER = "X-Rollout-Event"

_TITLES = {
    NoticeKind.STEP: "step",
    NoticeKind.PROMOTED: "promoted",
    NoticeKind.ROLLED_BACK: "rolled back",
    NoticeKind.PAUSED: "paused",
    NoticeKind.ABORTED: "aborted",
}
_ICONS = {
    NoticeKind.STEP: ":arrow_forward:",
    NoticeKind.PROMOTED: ":white_check_mark:",
    NoticeKind.ROLLED_BACK: ":rotating_light:",
    NoticeKind.PAUSED: ":pause_button:",
    NoticeKind.ABORTED: ":octagonal_sign:",
}


def notice_document(notice: Notice) -> dict[str, Any]:
    return {
        "id": notice.id,
        "event": notice.kind.value,
        "rollout": notice.rollout,
        "namespace": notice.namespace,
        "model": notice.model,
        "baseline": notice.baseline,
        "candidate": notice.candidate,
        "phase": notice.phase,
        "step": notice.step,
        "steps": notice.steps,
        "weights": {"baseline": notice.weights.baseline, "candidate": notice.weights.candidate},
        "weights_confirmed": notice.confirmed,
        "reason": notice.reason,
        "at": notice.when,
        "report": list(notice.report),
    }


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def webhook_request(notice: Notice, secret: str | None) -> tuple[bytes, dict[str, str]]:
    """The JSON body and headers of the generic webhook."""
    body = json.dumps(notice_document(notice), sort_keys=True).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        DELIVERY_HEADER: notice.id,
        EVENT_HEADER: notice.kind.value,
    }
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, body)
    return body, headers


def summary(notice: Notice) -> str:
    """One line a person reads: what happened, to which model, and where traffic is."""
    state = "confirmed" if notice.confirmed else "not confirmed yet"
    if notice.kind is NoticeKind.STEP:
        what = f"step {notice.step}/{notice.steps}"
    else:
        what = _TITLES[notice.kind]
    return (
        f"{notice.model} {notice.candidate} (against {notice.baseline}): {what}; "
        f"weights {notice.weights} ({state}). {notice.reason}"
    )


def slack_escape(text: str) -> str:
    """Slack's mrkdwn control characters: &, < and > must travel as entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_request(notice: Notice) -> tuple[bytes, dict[str, str]]:
    """A Slack incoming-webhook message: `text` (the fallback and the whole message for
    Slack-compatible receivers) and one mrkdwn section."""
    icon = _ICONS[notice.kind]
    title = f"{icon} *{slack_escape(notice.namespace)}/{slack_escape(notice.rollout)}*"
    lines = [f"{title}: {slack_escape(summary(notice))}"]
    if notice.report:
        lines.append("report: " + ", ".join(f"`{slack_escape(p)}`" for p in notice.report))
    text = "\n".join(lines)
    document = {
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    }
    body = json.dumps(document).encode("utf-8")
    return body, {"Content-Type": "application/json"}
