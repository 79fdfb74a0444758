"""A person's command (promote, abort) to the `rollout run` that drives a rollout.

The run holds the rollout's lock until it decides, so `rollout promote` and `rollout abort`
cannot drive the rollout themselves then, as `kubectl argo rollouts promote` cannot write the
controller's state either. They leave a command beside the state (`<key>.command`, JSON,
one at a time); the run looks for it between its steps, claims it by renaming it, and feeds the
engine the event the verb would have. A rename claims it once: either the run takes it, or
its writer withdraws it (the run did not answer in time), never both. The verb then reads
the saved state until the effect is confirmed by the router's read-back.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rollout.engine import Abort, Promote

__all__ = ["Command", "CommandBox"]


@dataclass(frozen=True)
class Command:
    verb: Literal["promote", "abort"]
    reason: str
    full: bool = False

    def event(self) -> Abort | Promote:
        if self.verb == "abort":
            return Abort(self.reason)
        return Promote(self.full, self.reason)

    @property
    def wanted(self) -> str:
        if self.verb == "abort":
            return "abort (all traffic back to the baseline)"
        return "promote (all traffic to the candidate)" if self.full else "promote (the next step)"


class CommandBox:
    """The command file of one rollout in a state directory."""

    def __init__(self, directory: Path, key: str) -> None:
        self.path = directory / f"{key}.command"  # not *.json: no state file
        self._taken = self.path.with_name(f"{self.path.name}.taken")

    def post(self, command: Command) -> bool:
        """Leave `command` for the run; False when an earlier one still waits."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        draft = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        body = {"verb": command.verb, "reason": command.reason, "full": command.full}
        draft.write_text(json.dumps(body))
        try:
            os.link(draft, self.path)  # whole, and never over a command that waits
        except FileExistsError:
            return False
        finally:
            draft.unlink()
        return True

    def pending(self) -> bool:
        return self.path.exists()

    def withdraw(self) -> bool:
        """Take the command back; False when the run has already claimed it."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True

    def take(self) -> Command | None:
        """The waiting command, claimed (the run's side); None when there is none or it is
        not one a verb writes (removed: a command is never taken twice)."""
        try:
            os.replace(self.path, self._taken)
        except FileNotFoundError:
            return None
        try:
            body = json.loads(self._taken.read_text())
            verb, reason, full = body["verb"], body["reason"], body["full"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        finally:
            with contextlib.suppress(FileNotFoundError):
                self._taken.unlink()
        if verb not in ("promote", "abort") or not isinstance(reason, str):
            return None
        return Command(verb, reason, bool(full))
