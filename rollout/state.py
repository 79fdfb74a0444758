"""What a rollout remembers between looks, and where it keeps it.

`RolloutState` is everything the engine needs to resume after a crash at the same
step with the same weights, and it is bounded: per look only numbers (counts, bucket
counts, problems), the judge's running `Analysis`; the PromQL text of each look goes to
a query log beside it (`QueryLog`), which the report reads. 120 looks on the kit's 64
buckets take about 33 KB of JSON (tests/test_state.py measures it): the looks are packed
(bucket layouts once, per-bucket counts, zlib, base64).

Stores are keyed (`<namespace>-<name>`) with optimistic concurrency (`StateStore`):
`load(key) -> (state, version)`, `save(key, state, expected_version) -> new version`,
`StateConflict` on a stale version, no write when nothing changed. `LocalStateStore`
keeps one file per key (`<dir>/<key>.json`, the version a counter in the file), each a
`LocalFileStore`: written atomically (temporary file, fsync, rename, fsync of the
directory; a save that only adds looks skips the fsyncs, see `_only_looks`), with an
exclusive `flock` on `<file>.lock` so a second `rollout run` of the same rollout refuses to
start. The kernel drops an flock when its holder dies, so a dead run's lock is simply taken.
The Kubernetes status store implements the same Protocol with resourceVersion.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import itertools
import json
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import types
import typing
import zlib
from array import array
from base64 import b64decode, b64encode
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, Final, Protocol

from rollout.analysis.accumulate import Analysis
from rollout.analysis.observation import (
    CustomValue,
    Observation,
    QueryRecord,
    Target,
    VersionCounts,
    shared_bucket,
)
from rollout.analysis.verdict import Judgement
from rollout.evidence.report import WeightChange
from rollout.routers.base import Weights

# 3: long runs of floats (the judge's running totals) as binary; 2: versioned, looks packed;
# 1: looks as objects. All three are read.
SCHEMA_VERSION: Final = 3


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
    # Every look since the start (its numbers; the engine keeps no query text here).
    history: tuple[Observation, ...] = ()
    analysis: Analysis | None = None  # the judge's running totals and test statistics
    judgement: Judgement | None = None  # of the last look
    source_outage: Outage | None = None
    router_outage: Outage | None = None
    weight_changes: tuple[WeightChange, ...] = ()
    decided_at: float | None = None
    reason: str = ""  # why the rollout was decided (promoted, rolled back, paused, aborted)
    report_written: bool = False
    report_paths: tuple[str, ...] = ()  # where the report went (none without --report-dir)
    notes: tuple[str, ...] = ()  # outages, drift repaired, resumes: they go in the report
    # The alert firings (AlertFired.key) this rollout acted on, the latest last and bounded:
    # Alertmanager repeats a firing alert, and a repeat must not act again, even after a restart.
    alerts_handled: tuple[str, ...] = ()
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


Version = str  # opaque: a counter in a local file, a resourceVersion in Kubernetes


def state_to_json(state: RolloutState, version: int = 0) -> str:
    return _document(_state_body(state), version)


def state_from_json(text: str, source: str = "state") -> RolloutState:
    return versioned_from_json(text, source)[0]


def versioned_from_json(text: str, source: str = "state") -> tuple[RolloutState, int]:
    """The state and its version counter (0 in a file written before versions)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateError(f"{source}: not valid JSON ({exc})") from None
    schema = document.get("schema") if isinstance(document, dict) else None
    if schema not in (1, 2, SCHEMA_VERSION):
        raise StateError(
            f"{source}: state schema {schema!r}, this version reads schema {SCHEMA_VERSION}; "
            "finish the rollout with the version that started it, or remove the file"
        )
    try:
        body = dict(document["state"])
        version = document.get("version", 0)
        if type(version) is not int:
            raise TypeError(f"version {version!r} is not a counter")
        packed = body.pop("history", [])
        state = _decode(RolloutState, body)
        history = _decode(tuple[Observation, ...], packed) if schema == 1 else _unpack_looks(packed)
    except (KeyError, TypeError, ValueError, IndexError, zlib.error) as exc:
        raise StateError(f"{source}: invalid state ({exc})") from None
    assert isinstance(state, RolloutState)
    return dataclasses.replace(state, history=history), version


def _state_body(state: RolloutState, packer: LookPacker | None = None) -> str:
    encoded = _encode(dataclasses.replace(state, history=()))
    encoded["history"] = (packer or LookPacker()).pack(state.history)
    return json.dumps(encoded, allow_nan=False)


def _document(body: str, version: int) -> str:
    return f'{{"schema": {SCHEMA_VERSION}, "version": {version}, "state": {body}}}'


# Floats that JSON cannot hold (a histogram's +Inf bucket) travel as strings.
_NON_FINITE: Final = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}


def _finite_numbers(values: tuple[Any, ...]) -> bool:
    """Only finite numbers, checked in C: `fsum` refuses anything that is not a number and is
    finite only if every term is (an overflow of the sum itself just takes the slow way).
    Bools and int enums pass and encode as the slow way would (`true`, their value)."""
    try:
        return math.isfinite(math.fsum(values))
    except (TypeError, OverflowError):
        return False


# The judge's running log-likelihood ratios (a row of floats per bucket or null ratio, a
# column per alternative: thousands of floats a rollout) travel as one base64 string of
# little-endian doubles, "f64x<columns>:...": exact, and a save encodes them with a copy
# instead of a decimal repr per number (most of a save's time at a thousand rollouts).
_BINARY_ROWS: Final = re.compile(r"f64x(\d+):")


def _binary_rows(rows: tuple[tuple[float, ...], ...]) -> str | None:
    """The rows as binary, None unless they are all floats of one length."""
    width = len(rows[0]) if rows else 0
    if not width or any(len(row) != width for row in rows):
        return None
    if set(map(type, itertools.chain.from_iterable(rows))) != {float}:
        return None
    packed = array("d", itertools.chain.from_iterable(rows))
    if sys.byteorder == "big":
        packed.byteswap()
    return f"f64x{width}:" + b64encode(packed.tobytes()).decode("ascii")


def _rows_from_binary(text: str) -> tuple[tuple[float, ...], ...]:
    found = _BINARY_ROWS.match(text)
    if found is None:
        raise ValueError(f"not binary rows of floats: {text[:20]!r}")
    width = int(found[1])
    packed = array("d")
    packed.frombytes(b64decode(text[found.end() :], validate=True))
    if width < 1 or len(packed) % width:
        raise ValueError(f"binary rows of floats of {len(packed)} values, not rows of {width}")
    if sys.byteorder == "big":
        packed.byteswap()
    values = tuple(packed)
    return tuple(values[i : i + width] for i in range(0, len(values), width))


def _encode(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        if value and type(value[0]) is tuple and (binary := _binary_rows(value)) is not None:
            return binary
        if _finite_numbers(value):
            return list(value)  # the judge's per-bucket numbers: no call per number
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
        if type(value) is str and args == (tuple[float, ...], Ellipsis):
            return _rows_from_binary(value)
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


# ---------------------------------------------------------------------------- packed looks
#
# {"layouts": [[le, ...], ...], "looks": base64(zlib(JSON rows))}. A row is
# [start, end, baseline, candidate, custom, problems, queries]; a version is
# [requests, errors] without a histogram, else [requests, errors, layout, first, steps]:
# the per-bucket counts (differences of the cumulative ones) from bucket `first` on,
# trailing zeros dropped. Exact: integers only; a histogram with a non-integer count is
# kept as it is ([requests, errors, layout, -1, counts]).


class LookPacker:
    """Packs a history, keeping each look's encoded row: when the next history only adds
    looks (the engine appends; the earlier Observation objects stay the same), only the new
    ones are encoded, so a save encodes its new look, not the whole rollout. (The rows are
    kept as text and compressed at each save: a running compressor per rollout would hold
    260 KB of zlib state, a lot for a process of 1000 rollouts.)"""

    def __init__(self) -> None:
        self._history: tuple[Observation, ...] = ()
        self._rows: list[str] = []
        self._layouts: dict[tuple[float, ...], int] = {}
        self._lock = threading.Lock()

    def pack(self, history: Sequence[Observation]) -> dict[str, Any]:
        with self._lock:
            kept = len(self._history)
            if len(history) < kept or any(
                a is not b for a, b in zip(history, self._history, strict=False)
            ):
                self._history, self._rows, self._layouts, kept = (), [], {}, 0
            self._rows.extend(
                json.dumps(_pack_look(look, self._layouts), separators=(",", ":"), allow_nan=False)
                for look in history[kept:]
            )
            self._history = tuple(history)
            text = "[" + ",".join(self._rows) + "]"
            return {
                "layouts": [_encode(layout) for layout in self._layouts],
                "looks": b64encode(zlib.compress(text.encode(), 6)).decode("ascii"),
            }


def _pack_look(look: Observation, layouts: dict[tuple[float, ...], int]) -> list[Any]:
    return [
        look.start,
        look.end,
        _pack_counts(look.baseline, layouts),
        _pack_counts(look.candidate, layouts),
        _encode(look.custom),
        list(look.problems),
        _encode(look.queries),
    ]


def _pack_counts(counts: VersionCounts, layouts: dict[tuple[float, ...], int]) -> list[Any]:
    packed: list[Any] = [counts.requests, counts.errors]
    if counts.buckets is None:
        return packed
    layout = layouts.setdefault(tuple(b.le for b in counts.buckets), len(layouts))
    values = [b.count for b in counts.buckets]
    if not all(type(v) is int for v in values):
        return [*packed, layout, -1, values]
    steps = [*values[:1], *(b - a for a, b in itertools.pairwise(values))]
    first = next((i for i, step in enumerate(steps) if step), len(steps))
    last = max((i + 1 for i, step in enumerate(steps) if step), default=first)
    return [*packed, layout, first, steps[first:last]]


def _unpack_looks(packed: Any) -> tuple[Observation, ...]:
    if not isinstance(packed, dict):
        raise TypeError("expected packed looks")
    layouts = [_decode(tuple[float, ...], layout) for layout in packed["layouts"]]
    rows = json.loads(zlib.decompress(b64decode(packed["looks"], validate=True)))
    return tuple(
        Observation(
            start=_decode(float, start),
            end=_decode(float, end),
            baseline=_unpack_counts(baseline, layouts),
            candidate=_unpack_counts(candidate, layouts),
            custom=_decode(tuple[CustomValue, ...], custom),
            problems=_decode(tuple[str, ...], problems),
            queries=_decode(tuple[QueryRecord, ...], queries),
        )
        for start, end, baseline, candidate, custom, problems, queries in rows
    )


def _unpack_counts(packed: list[Any], layouts: list[tuple[float, ...]]) -> VersionCounts:
    requests, errors = _decode(int | None, packed[0]), _decode(int | None, packed[1])
    if len(packed) == 2:
        return VersionCounts(requests, errors, None)
    _, _, layout, first, values = packed
    les = layouts[layout]
    counts: list[Any]
    if first == -1:
        counts = [_NON_FINITE.get(v, v) if isinstance(v, str) else v for v in values]
    else:
        counts, total = [], 0
        for i in range(len(les)):
            if first <= i < first + len(values):
                total += values[i - first]
            counts.append(total)
    return VersionCounts(requests, errors, tuple(map(shared_bucket, les, counts)))


# ---------------------------------------------------------------------------- stores


class StateLockedError(Exception):
    """Another live process runs this rollout."""


class StateConflict(Exception):
    """A save with a stale version: someone else saved this rollout since it was loaded."""


class StateStore(Protocol):
    """Where rollouts' states live, by key (`<namespace>-<name>`): local files now, the
    ModelRollouts' status later (the version is its resourceVersion)."""

    def load(self, key: str) -> tuple[RolloutState, Version] | None:
        """The saved state and its version, None when there is none; StateError when it
        cannot be used."""
        ...

    def save(self, key: str, state: RolloutState, expected_version: Version | None) -> Version:
        """Persist `state` entirely or not at all, if the saved version is still
        `expected_version` (None: nothing saved yet), else StateConflict and nothing
        changes. Nothing is written when `state` is what is saved; returns the version."""
        ...


class LocalFileStore:
    """One rollout's JSON file, written atomically, guarded by `<file>.lock`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self._mutex = threading.Lock()
        # What this process last read or wrote: (file signature, version, state body).
        self._known: tuple[tuple[int, int, int], int, str] | None = None
        self._saved: RolloutState | None = None  # the state behind `_known`
        self._packer = LookPacker()

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
        loaded = self.load_versioned()
        return None if loaded is None else loaded[0]

    def load_versioned(self) -> tuple[RolloutState, Version] | None:
        with self._mutex:
            read = self._read()
        if read is None:
            return None
        state, version = read
        return state, str(version)

    def save(self, state: RolloutState, expected_version: Version | None) -> Version:
        body = _state_body(state, self._packer)
        with self._mutex:
            current = self._current()
            found = None if current is None else str(current[0])
            if found != expected_version:
                raise StateConflict(
                    f"{self.path}: saved version {found}, expected {expected_version}: "
                    "another writer saved this rollout since it was loaded"
                )
            if current is not None and current[1] == body:
                return found or ""
            version = 1 + (current[0] if current is not None else 0)
            durable = current is None or not _only_looks(self._saved, state)
            self._write(_document(body, version), durable)
            self._known, self._saved = (self._signature(), version, body), state
            return str(version)

    # ---------------------------------------------------------------- internals

    def _read(self) -> tuple[RolloutState, int] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
            signature = self._signature()
        except FileNotFoundError:
            self._known = None
            return None
        except OSError as exc:
            raise StateError(f"{self.path}: cannot read ({exc.strerror})") from None
        state, version = versioned_from_json(text, str(self.path))
        self._known, self._saved = (signature, version, _state_body(state, self._packer)), state
        return state, version

    def _current(self) -> tuple[int, str] | None:
        """The saved version and body; from memory while the file is the one last seen."""
        try:
            signature = self._signature()
        except FileNotFoundError:
            return None
        if (self._known is None or self._known[0] != signature) and self._read() is None:
            return None
        assert self._known is not None
        return self._known[1], self._known[2]

    def _signature(self) -> tuple[int, int, int]:
        status = os.stat(self.path)
        return status.st_ino, status.st_mtime_ns, status.st_size

    def _write(self, text: str, durable: bool) -> None:
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                if durable:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        if not durable:
            return
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


def _only_looks(before: RolloutState | None, after: RolloutState) -> bool:
    """Whether `after` adds looks to `before` and changes nothing anyone acts on: phase,
    step, weights wanted and confirmed, outages, decision, report, alerts. Such a save
    skips the fsyncs (it is still atomic, and a killed process loses nothing): a power
    failure may take it back, and the resumed rollout reads that window again from the
    counters at its last saved look. Everything else is on disk before it is acted on.
    At a thousand rollouts the fsyncs were most of a tick (benchmarks/controller_scale.py).
    """
    if before is None or len(after.history) <= len(before.history):
        return False
    return all(
        getattr(before, name) == getattr(after, name)
        for name in (
            "target",
            "policy_digest",
            "phase",
            "step",
            "desired",
            "confirmed",
            "step_started_at",
            "source_outage",
            "router_outage",
            "weight_changes",
            "decided_at",
            "report_written",
            "alerts_handled",
        )
    )


class LocalStateStore:
    """`StateStore` on a directory: one `LocalFileStore` per key, `<dir>/<key>.json`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._files: dict[str, LocalFileStore] = {}
        self._mutex = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalStateStore({str(self.directory)!r})"

    def file(self, key: str) -> LocalFileStore:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"a state key is a file name, got {key!r}")
        with self._mutex:
            return self._files.setdefault(key, LocalFileStore(self.directory / f"{key}.json"))

    def load(self, key: str) -> tuple[RolloutState, Version] | None:
        return self.file(key).load_versioned()

    def save(self, key: str, state: RolloutState, expected_version: Version | None) -> Version:
        return self.file(key).save(state, expected_version)

    def lock(self, key: str) -> contextlib.AbstractContextManager[None]:
        return self.file(key).lock()

    def archive(self, key: str, state: RolloutState) -> Path:
        """Copy the rollout's state (and move its query log) to `<key>.<stamp>.json` beside
        it, the stamp from when it was decided (or last updated); call under its lock."""
        at = state.decided_at if state.decided_at is not None else state.updated_at
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(at))
        target = self.directory / f"{key}.{stamp}.json"
        serial = 1
        while target.exists():
            serial += 1
            target = self.directory / f"{key}.{stamp}-{serial}.json"
        source = self.file(key).path
        shutil.copyfile(source, target)
        queries = self.directory / f"{key}.queries.jsonl"
        if queries.exists():
            os.replace(queries, target.with_name(target.name[: -len(".json")] + ".queries.jsonl"))
        return target

    def entries(self) -> list[tuple[Path, RolloutState | None, str]]:
        """Every state file here, current and archived: (path, state or None, error)."""
        found: list[tuple[Path, RolloutState | None, str]] = []
        for path in sorted(self.directory.glob("*.json")):
            if path.name.startswith("."):
                continue
            try:
                found.append(
                    (path, state_from_json(path.read_text(encoding="utf-8"), str(path)), "")
                )
            except (OSError, StateError) as exc:
                found.append((path, None, str(exc)))
        return found


# ---------------------------------------------------------------------------- query log


class QueryLog(Protocol):
    """The PromQL text each look ran, kept beside the state for the report."""

    def append(self, key: str, look: Observation) -> None:
        """Record `look.queries` (a look's (start, end] names it)."""
        ...

    def read(self, key: str) -> Mapping[tuple[float, float], tuple[QueryRecord, ...]]:
        """Every look's queries by (start, end); a look not found has none recorded."""
        ...

    def clear(self, key: str) -> None:
        """Forget an earlier rollout's queries under this key (a new rollout starts)."""
        ...


class LocalQueryLog:
    """`<dir>/<key>.queries.jsonl`: one line per look, appended before the look is saved."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.queries.jsonl"

    def append(self, key: str, look: Observation) -> None:
        line = {"start": look.start, "end": look.end, "queries": _encode(look.queries)}
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.path(key).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, allow_nan=False, separators=(",", ":")) + "\n")

    def clear(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(key).unlink()

    def read(self, key: str) -> dict[tuple[float, float], tuple[QueryRecord, ...]]:
        try:
            lines = self.path(key).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return {}
        found: dict[tuple[float, float], tuple[QueryRecord, ...]] = {}
        for line in lines:
            try:  # a line torn by a kill -9 is skipped, the others stand
                entry = json.loads(line)
                queries = _decode(tuple[QueryRecord, ...], entry["queries"])
                found[(float(entry["start"]), float(entry["end"]))] = queries
            except (ValueError, KeyError, TypeError):
                continue
        return found
