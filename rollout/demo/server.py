"""The demo model server: a tiny deterministic model behind FastAPI, instrumented by one call.

    python -m rollout.demo.server --model fraud --version 2.4.0 --port 8001 \
        [--latency-factor 1.4] [--error-rate 0.05] [--spans-file spans.jsonl] \
        [--sample-rate 0.1] [--slow-quantile 0.9] [--slow-threshold S] [--seed 0]

The "work" is simulated with sleeps drawn from lognormals (feature fetch, inference,
serialization), so the baseline P95 is about 60-100 ms; `--latency-factor` scales all
of it, `--error-rate` fails that fraction of inferences with HTTP 500. Binds 127.0.0.1;
SIGTERM shuts it down cleanly and flushes the spans file.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import random
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from rollout.demo.procs import ManagedProcess
from rollout.instrument import Instrumentation, TracingConfig, instrument

# Medians and spreads (seconds) of the simulated stages; their sum has P95 ~ 75 ms.
FETCH_MEDIAN, FETCH_SIGMA = 0.018, 0.35
INFER_MEDIAN, INFER_SIGMA = 0.024, 0.35
SERIALIZE_MEDIAN, SERIALIZE_SIGMA = 0.003, 0.30
FEATURE_SOURCE = "online_store"
# The "model": logistic regression on two stored user features and two request features.
WEIGHTS = (1.3, -0.8, 0.45, 0.12)
BIAS = -2.0


@dataclass(frozen=True)
class ServerConfig:
    model: str
    version: str
    port: int
    latency_factor: float = 1.0
    error_rate: float = 0.0
    spans_file: Path | None = None
    sample_rate: float = 0.1
    slow_quantile: float | None = 0.9
    slow_threshold_seconds: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.latency_factor <= 0:
            raise ValueError(f"--latency-factor must be positive, got {self.latency_factor}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"--error-rate must be within [0, 1], got {self.error_rate}")

    def argv(self, python: str = sys.executable) -> list[str]:
        """The command line that starts this server (for the launcher and the tests)."""
        args = [python, "-m", "rollout.demo.server", "--model", self.model]
        args += ["--version", self.version, "--port", str(self.port)]
        args += ["--latency-factor", repr(self.latency_factor)]
        args += ["--error-rate", repr(self.error_rate), "--sample-rate", repr(self.sample_rate)]
        args += ["--slow-quantile", repr(self.slow_quantile or 0), "--seed", str(self.seed)]
        if self.spans_file is not None:
            args += ["--spans-file", str(self.spans_file)]
        if self.slow_threshold_seconds is not None:
            args += ["--slow-threshold", repr(self.slow_threshold_seconds)]
        return args


class PredictRequest(BaseModel):
    user_id: str = Field(min_length=1, max_length=128)
    amount: float = Field(ge=0)
    items: int = Field(ge=0, le=10_000)


@dataclass(frozen=True)
class StageDelays:
    fetch: float
    infer: float
    serialize: float


class LatencyModel:
    """Seeded lognormal stage delays, every stage scaled by `factor`."""

    def __init__(self, seed: int, factor: float) -> None:
        self._rng = random.Random(seed)
        self.factor = factor

    def draw(self) -> StageDelays:
        def stage(median: float, sigma: float) -> float:
            return self.factor * self._rng.lognormvariate(math.log(median), sigma)

        return StageDelays(
            fetch=stage(FETCH_MEDIAN, FETCH_SIGMA),
            infer=stage(INFER_MEDIAN, INFER_SIGMA),
            serialize=stage(SERIALIZE_MEDIAN, SERIALIZE_SIGMA),
        )


def stored_features(user_id: str) -> tuple[float, float]:
    """What the feature store would hold for this user: stable values in [0, 1)."""
    digest = hashlib.sha256(user_id.encode()).digest()
    return digest[0] / 256.0, digest[1] / 256.0


def score(user: tuple[float, float], amount: float, items: int) -> float:
    x = (user[0], user[1], math.log1p(amount), float(items))
    z = BIAS + sum(w * v for w, v in zip(WEIGHTS, x, strict=True))
    return 1.0 / (1.0 + math.exp(-z))


class ModelError(RuntimeError):
    """The simulated inference failure behind `--error-rate`."""


def create_app(config: ServerConfig) -> tuple[FastAPI, Instrumentation]:
    app = FastAPI(title=f"{config.model} {config.version}", docs_url=None, redoc_url=None)
    tracing = (
        TracingConfig(
            spans_file=config.spans_file,
            head_rate=config.sample_rate,
            slow_quantile=config.slow_quantile,
            slow_threshold_seconds=config.slow_threshold_seconds,
        )
        if config.spans_file is not None
        else None
    )
    inst = instrument(
        app,
        model_name=config.model,
        model_version=config.version,
        service=f"{config.model}-{config.version}",
        tracing=tracing,
    )
    latency = LatencyModel(config.seed, config.latency_factor)
    failures = random.Random(config.seed + 1)  # its own stream: errors don't shift latencies
    version_header = {"x-model-version": config.version}

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse(
            {"status": "ok", "model_version": config.version}, headers=version_header
        )

    @app.post("/predict")
    async def predict(body: PredictRequest) -> JSONResponse:
        delays = latency.draw()
        fails = failures.random() < config.error_rate
        with inst.feature_fetch(FEATURE_SOURCE):
            await asyncio.sleep(delays.fetch)
            user = stored_features(body.user_id)
        try:
            with inst.infer():
                await asyncio.sleep(delays.infer)
                if fails:
                    raise ModelError("simulated inference failure")
                probability = score(user, body.amount, body.items)
        except ModelError as exc:
            answer: dict[str, Any] = {"error": str(exc), "model_version": config.version}
            return JSONResponse(answer, status_code=500, headers=version_header)
        with inst.serialize():
            await asyncio.sleep(delays.serialize)
            answer = {
                "model_name": config.model,
                "model_version": config.version,
                "score": round(probability, 6),
                "label": probability >= 0.5,
                "request_id": inst.request_id(),
            }
        return JSONResponse(answer, headers=version_header)

    return app, inst


def start_server(config: ServerConfig, log_path: Path, timeout: float = 30.0) -> ManagedProcess:
    """Start the server as a child process and wait until `/healthz` answers."""
    process = ManagedProcess(f"model server {config.version}", config.argv(), log_path).start()
    try:
        process.wait_http(f"http://127.0.0.1:{config.port}/healthz", timeout)
    except Exception:
        process.stop()
        raise
    return process


def parse_args(argv: list[str] | None) -> ServerConfig:
    parser = argparse.ArgumentParser(prog="python -m rollout.demo.server", description=__doc__)
    parser.add_argument("--model", required=True, help="model_name label value")
    parser.add_argument("--version", required=True, help="model_version label value")
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--latency-factor", type=float, default=1.0)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--spans-file", type=Path, default=None, help="JSON lines; off if unset")
    parser.add_argument("--sample-rate", type=float, default=0.1, help="head sampling rate")
    parser.add_argument(
        "--slow-quantile",
        type=float,
        default=0.9,
        help="keep traces at or above this recent latency quantile (0 turns the rule off)",
    )
    parser.add_argument(
        "--slow-threshold", type=float, default=None, help="keep traces slower than S seconds"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        return ServerConfig(
            model=args.model,
            version=args.version,
            port=args.port,
            latency_factor=args.latency_factor,
            error_rate=args.error_rate,
            spans_file=args.spans_file,
            sample_rate=args.sample_rate,
            slow_quantile=args.slow_quantile or None,
            slow_threshold_seconds=args.slow_threshold,
            seed=args.seed,
        )
    except ValueError as exc:
        parser.error(str(exc))


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        app, inst = create_app(config)
    except ValueError as exc:  # a sampling option out of range
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=config.port,
            log_level="warning",
            access_log=False,  # our JSON request lines replace it
            timeout_graceful_shutdown=5,
        )
    )
    # uvicorn catches SIGTERM/SIGINT, shuts down gracefully, then re-raises the signal to
    # the handler it found. With this one installed, that re-raise comes back here, so the
    # spans file is closed and the exit code is 0 rather than death by signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: None)
    try:
        server.run()
    finally:
        inst.shutdown()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
