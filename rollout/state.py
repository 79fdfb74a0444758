"""What a rollout remembers between looks, and where it keeps it.

`RolloutState` is everything the engine needs to resume after a crash at the same
step with the same weights. It is saved after every action: `LocalFileStore` writes
it atomically (temporary file, fsync, rename, fsync of the directory) and holds an
exclusive `flock` so a second `rollout run` of the same rollout refuses to start.
The kernel drops an flock when its holder dies, so a dead run's lock is simply taken.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import tempfile
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, Final, Protocol

from rollout.analysis.accumulate import Analysis
from rollout.analysis.observation import Observation, Target
from rollout.analysis.verdict import Judgement
from rollout.evidence.report import WeightChange
from rollout.routers.base import Weights

SCHEMA_VERSION: Final = 1


class Phase(StrEnum):
    PENDING = "Pending"
    PROGRESSING = "Progressing"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    PAUSED = "Paused"  # inconclusive or an outage with action `pause`: a person decides
    ABORTED = "Aborted"  # stopped by a person; traffic returned to the baseline

    @property
    def decided(self) -> bool:
        """The rollout will not move forward by itself any more."""
        return self not in (Phase.PENDING, Phase.PROGRESSING)


@dataclass(frozen=True)
class Outage:
    """Prometheus or the router failing since `since`; the next try is at `retry_at`."""

    since: float
    attempts: int
    reason: str
    retry_at: float


@dataclass(frozen=True)
class RolloutState:
    name: str
    target: Target
    policy_digest: str  # resuming under a changed policy would repeat or skip steps
    phase: Phase
    step: int  # index into policy.steps; len(steps) once promoted
    desired: Weights  # what the router should show; written before it is applied
    desired_reason: str
    confirmed: bool  # the router's read-back showed `desired` since it was last set
    updated_at: float
    started_at: float | None = None
    step_started_at: float | None = None  # when this step's weights were first confirmed
    # Seconds Prometheus was failing during this step: they extend its hold and grace, so an
    # outage that ends in time is followed by the analysis it interrupted, not by a pause.
    step_outage_seconds: float = 0.0
    last_look_end: float | None = None  # looks are contiguous: the next starts here
    history: tuple[Observation, ...] = ()  # every look since the start, for the report
    analysis: Analysis | None = None  # the judge's running totals and test statistics
    judgement: Judgement | None = None  # of the last look
    source_outage: Outage | None = None
    router_outage: Outage | None = None
    weight_changes: tuple[WeightChange, ...] = ()
    decided_at: float | None = None
    reason: str = ""  # why the rollout was decided (promoted, rolled back, paused, aborted)
    report_written: bool = False
    notes: tuple[str, ...] = ()  # outages, drift repaired, resumes: they go in the report
    message: str = ""  # what the rollout is doing now, for people watching

    @classmethod
    def new(cls, name: str, target: Target, policy_digest: str, now: float) -> RolloutState:
        return cls(
            name=name,
            target=target,
            policy_digest=policy_digest,
            phase=Phase.PENDING,
            step=0,
            desired=Weights(baseline=100, candidate=0),
            desired_reason="not started",
            confirmed=False,
            updated_at=now,
            message="pending",
        )


# ---------------------------------------------------------------------------- JSON


class StateError(Exception):
    """A state file that cannot be used (unreadable, another schema, invalid content)."""


def state_to_json(state: RolloutState) -> str:
    return json.dumps({"schema": SCHEMA_VERSION, "state": _encode(state)}, allow_nan=False)


def state_from_json(text: str, source: str = "state") -> RolloutState:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA_VERSION:
        found = document.get("schema") if isinstance(document, dict) else None
        raise StateError(
            f"{source}: state schema {found!r}, this version reads schema {SCHEMA_VERSION}; "
            "finish the rollout with the version that started it, or remove the file"
        )
    try:
        state = _decode(RolloutState, document["state"])
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"{source}: invalid state ({exc})") from None
    assert isinstance(state, RolloutState)
    return state


# Floats that JSON cannot hold (a histogram's +Inf bucket) travel as strings.
_NON_FINITE: Final = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}


def _encode(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_encode(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    return value


def _decode(kind: Any, value: Any) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        (inner,) = [option for option in options if option is not type(None)]
        return _decode(inner, value)
    if origin is tuple:
        args = typing.get_args(kind)
        if not isinstance(value, list):
            raise TypeError(f"expected a list for {kind}, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], item) for item in value)
        return tuple(_decode(arg, item) for arg, item in zip(args, value, strict=True))
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        if not isinstance(value, dict):
            raise TypeError(f"expected an object for {kind.__name__}")
        hints = typing.get_type_hints(kind)
        known = {f.name for f in dataclasses.fields(kind)}
        return kind(**{k: _decode(hints[k], v) for k, v in value.items() if k in known})
    if isinstance(kind, type) and issubclass(kind, Enum):
        return kind(value)
    if kind is float:
        if isinstance(value, str) and value in _NON_FINITE:
            return _NON_FINITE[value]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"expected a number, got {value!r}")
        return float(value)
    if kind in (int, str, bool) and type(value) is not kind:
        raise TypeError(f"expected {kind.__name__}, got {value!r}")
    return value


# ---------------------------------------------------------------------------- stores


class StateLockedError(Exception):
    """Another live process runs this rollout."""


class StateStore(Protocol):
    """Where a rollout's state lives: a local file now, the ModelRollout's status later."""

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Hold the exclusive right to run this rollout; StateLockedError when taken."""
        ...

    def load(self) -> RolloutState | None:
        """The saved state, None when there is none; StateError when it cannot be used."""
        ...

    def save(self, state: RolloutState) -> None:
        """Persist `state` entirely or not at all."""
        ...


class LocalFileStore:
    """One JSON file per rollout, written atomically, guarded by `<file>.lock`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")

    def __repr__(self) -> str:
        return f"LocalFileStore({str(self.path)!r})"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                raise StateLockedError(
                    f"rollout state {self.path} is locked by a running `rollout run` "
                    f"(pid {holder}); wait for it to finish or stop that process"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            os.fsync(fd)
            self._remove_stale_temporaries()
            yield
        finally:
            # Closing the descriptor releases the flock; the file stays, so no holder races
            # a newcomer over a path that was unlinked and created again.
            os.close(fd)

    def load(self) -> RolloutState | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"{self.path}: cannot read ({exc.strerror})") from None
        return state_from_json(text, str(self.path))

    def save(self, state: RolloutState) -> None:
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(state_to_json(state))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        # The rename is durable only once the directory entry is on disk.
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of a run killed mid-save; only the lock holder may remove them."""
        for leftover in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                leftover.unlink()
