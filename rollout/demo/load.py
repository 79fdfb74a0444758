"""An open-loop load generator: requests leave at a target rate whatever the answers take.

    python -m rollout.demo.load --url http://127.0.0.1:8000/predict --rps 50 --duration 30

Bounded in time (`duration`) and count (`max_requests`), it stops by itself. Every
request carries its own `x-request-id`; answers are counted per `model_version` (the
`x-model-version` header, else the JSON body's field) and per HTTP status. A request
that would exceed `max_in_flight` is skipped and counted, never delayed, so a slow
server cannot slow the offered rate down (that would hide its latency).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import httpx

UNKNOWN_VERSION = "unknown"  # the answer named no version (e.g. a proxy's own 503)
TRANSPORT_ERROR = "transport_error"  # no HTTP answer: refused, reset, timed out


@dataclass(frozen=True)
class LoadResult:
    sent: int
    skipped: int  # not sent: max_in_flight requests were already outstanding
    by_version: Mapping[str, int]
    by_status: Mapping[str, int]  # "200", "500", ..., "transport_error"
    by_version_status: Mapping[str, Mapping[str, int]]
    elapsed_seconds: float

    @property
    def answered(self) -> int:
        return self.sent - self.by_status.get(TRANSPORT_ERROR, 0)

    @property
    def errors(self) -> int:
        """5xx answers and requests that got no answer."""
        return sum(
            n
            for s, n in self.by_status.items()
            if s == TRANSPORT_ERROR or (s.isdigit() and int(s) >= 500)
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "answered": self.answered, "errors": self.errors}


class _Tally:
    """Counts shared between the sending loop and readers in other threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent = 0
        self.skipped = 0
        self.pairs: Counter[tuple[str, str]] = Counter()
        self.started = time.monotonic()

    def count_sent(self) -> None:
        with self._lock:
            self.sent += 1

    def count_skipped(self) -> None:
        with self._lock:
            self.skipped += 1

    def add(self, version: str, status: str) -> None:
        with self._lock:
            self.pairs[(version, status)] += 1

    def snapshot(self) -> LoadResult:
        with self._lock:
            by_version: Counter[str] = Counter()
            by_status: Counter[str] = Counter()
            nested: dict[str, dict[str, int]] = {}
            for (version, status), n in self.pairs.items():
                by_version[version] += n
                by_status[status] += n
                nested.setdefault(version, {})[status] = n
            return LoadResult(
                sent=self.sent,
                skipped=self.skipped,
                by_version=dict(by_version),
                by_status=dict(by_status),
                by_version_status=nested,
                elapsed_seconds=time.monotonic() - self.started,
            )


def _payload(rng: random.Random) -> dict[str, Any]:
    return {
        "user_id": f"user-{rng.randrange(10_000):05d}",
        "amount": round(rng.lognormvariate(3.0, 1.0), 2),
        "items": rng.randrange(1, 8),
    }


def _version_of(response: httpx.Response) -> str:
    header: str | None = response.headers.get("x-model-version")
    if header:
        return header
    try:
        body = response.json()
    except ValueError:
        return UNKNOWN_VERSION
    version = body.get("model_version") if isinstance(body, dict) else None
    return str(version) if version else UNKNOWN_VERSION


async def _one(client: httpx.AsyncClient, url: str, body: dict[str, Any], tally: _Tally) -> None:
    try:
        response = await client.post(url, json=body, headers={"x-request-id": uuid.uuid4().hex})
    except httpx.HTTPError:
        tally.add(UNKNOWN_VERSION, TRANSPORT_ERROR)
        return
    tally.add(_version_of(response), str(response.status_code))


async def generate_load(
    url: str,
    rps: float,
    duration: float,
    *,
    max_requests: int | None = None,
    timeout: float = 10.0,
    max_in_flight: int = 200,
    seed: int = 0,
    stop: threading.Event | None = None,
    tally: _Tally | None = None,
) -> LoadResult:
    """Send POSTs to `url` at `rps` for `duration` seconds (or `max_requests`, or `stop`)."""
    if rps <= 0 or duration < 0:
        raise ValueError(f"rps must be positive and duration >= 0, got {rps} and {duration}")
    tally = tally if tally is not None else _Tally()
    rng = random.Random(seed)
    limit = max_requests if max_requests is not None else int(rps * duration) + 1
    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
    in_flight: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        start = time.monotonic()
        for i in range(limit):
            due = start + i / rps
            if due - start >= duration or (stop is not None and stop.is_set()):
                break
            # Sleep in short slices so a stop request is seen even at a low rate.
            while (wait := due - time.monotonic()) > 0 and not (stop and stop.is_set()):
                await asyncio.sleep(min(wait, 0.2))
            if stop is not None and stop.is_set():
                break
            if len(in_flight) >= max_in_flight:
                tally.count_skipped()
                continue
            tally.count_sent()
            task = asyncio.create_task(_one(client, url, _payload(rng), tally))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:  # each request ends by its own timeout at the latest
            await asyncio.wait(list(in_flight))
    return tally.snapshot()


def run_load(url: str, rps: float, duration: float, **options: Any) -> LoadResult:
    """`generate_load` from synchronous code (its own event loop)."""
    return asyncio.run(generate_load(url, rps, duration, **options))


class BackgroundLoad:
    """Load in a background thread: `start()`, watch `snapshot()`, `stop()` for the result.

    It also ends by itself after `duration` seconds or `max_requests` requests.
    """

    def __init__(self, url: str, rps: float, duration: float, **options: Any) -> None:
        self._args = (url, rps, duration)
        self._options = options
        self._stop = threading.Event()
        self._tally = _Tally()
        self._result: LoadResult | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="rollout-load", daemon=True)

    def _run(self) -> None:
        try:
            self._result = run_load(
                *self._args, stop=self._stop, tally=self._tally, **self._options
            )
        except BaseException as exc:  # handed to the caller of stop()
            self._error = exc

    def start(self) -> BackgroundLoad:
        self._thread.start()
        return self

    def running(self) -> bool:
        return self._thread.is_alive()

    def snapshot(self) -> LoadResult:
        """The counts so far (answers still in flight are not in yet)."""
        return self._tally.snapshot()

    def stop(self, timeout: float = 30.0) -> LoadResult:
        """Stop sending, wait for the answers in flight, return the counts."""
        self._stop.set()
        self._thread.join(timeout)
        if self._error is not None:
            raise RuntimeError(f"load generator failed: {self._error}") from self._error
        return self._result if self._result is not None else self._tally.snapshot()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rollout.demo.load", description=__doc__)
    parser.add_argument("--url", required=True, help="the predict endpoint, e.g. .../predict")
    parser.add_argument("--rps", type=float, default=20.0, help="target requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--max-requests", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    parser.add_argument("--max-in-flight", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        result = run_load(
            args.url,
            args.rps,
            args.duration,
            max_requests=args.max_requests,
            timeout=args.timeout,
            max_in_flight=args.max_in_flight,
            seed=args.seed,
        )
    except ValueError as exc:
        parser.error(str(exc))
    except KeyboardInterrupt:
        return 130
    print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
