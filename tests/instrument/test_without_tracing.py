"""`instrument` without tracing: metrics and logs still follow the contract, with no exemplars."""

from __future__ import annotations

import asyncio
import io
import json

import httpx
from fastapi import FastAPI

from rollout.instrument import instrument


def test_no_tracing_means_no_exemplars_but_the_same_metrics_and_logs() -> None:
    app = FastAPI()
    logs = io.StringIO()
    inst = instrument(
        app, model_name="m", model_version="1", service="svc", tracing=None, log_stream=logs
    )

    @app.post("/predict")
    async def predict() -> dict[str, str]:
        with inst.feature_fetch("online_store"), inst.infer(), inst.serialize():
            return {"model_version": "1"}

    async def call() -> tuple[int, str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answer = await client.post("/predict", headers={"x-request-id": "abc"})
            scrape = await client.get(
                "/metrics", headers={"accept": "application/openmetrics-text"}
            )
            return answer.status_code, scrape.text

    status, metrics = asyncio.run(call())
    assert status == 200
    assert 'inference_requests_total{model_name="m",model_version="1",status="ok"} 1.0' in metrics
    assert 'feature_fetch_seconds_count{source="online_store"} 1.0' in metrics
    assert 'model_infer_seconds_count{model_name="m",model_version="1"} 1.0' in metrics
    assert "trace_id" not in metrics
    (line,) = logs.getvalue().splitlines()  # /metrics itself is not logged
    record = json.loads(line)
    assert record["request_id"] == "abc" and record["trace_id"] is None
    assert record["status"] == "ok" and record["route"] == "/predict"
