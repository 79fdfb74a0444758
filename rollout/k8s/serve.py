"""`rollout controller`: the process around `Controller`: the client, leader election, the
health endpoints, logging, and SIGTERM (stop taking work, let running steps finish, release
the lease, exit 0)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from rollout.alerts import AlertReceiver, AlertWebhook
from rollout.exit_codes import ExitCode
from rollout.k8s.api import KubeConfigError, RolloutApi, connect
from rollout.k8s.controller import Controller, ControllerSettings, run_controller
from rollout.k8s.health import HealthServer, parse_address
from rollout.k8s.leader import LeaderElector, LeaseSettings, default_identity
from rollout.observe import Observers
from rollout.telemetry import LogFormat
from rollout.telemetry.setup import running_telemetry

log = logging.getLogger("rollout.controller")


@dataclass(frozen=True)
class ServeOptions:
    namespace: str | None
    kubeconfig: Path | None
    context: str | None
    workers: int
    resync_seconds: float
    health_address: str  # "" for none
    leader_elect: bool
    lease_name: str
    lease_namespace: str | None
    lease_duration: int
    renew_deadline: float
    retry_period: float
    identity: str
    alert_webhook: AlertWebhook | None = None
    log_format: LogFormat = LogFormat.TEXT
    metrics_port: int | None = None
    metrics_address: str = "127.0.0.1"


def serve(options: ServeOptions) -> ExitCode:
    logging.basicConfig(
        level=os.environ.get("ROLLOUT_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with contextlib.ExitStack() as telemetry:
        try:
            observers = telemetry.enter_context(
                running_telemetry(
                    log_format=options.log_format,
                    log_stream=sys.stdout if options.log_format is LogFormat.JSON else sys.stderr,
                    metrics_port=options.metrics_port,
                    metrics_address=options.metrics_address,
                    text_level=logging.getLevelNamesMapping().get(
                        os.environ.get("ROLLOUT_LOG_LEVEL", "INFO").upper(), logging.INFO
                    ),
                )
            )
        except OSError as exc:
            log.error("cannot serve metrics on port %s: %s", options.metrics_port, exc)
            return ExitCode.BAD_INPUT
        return _serve(options, Observers(observers))


def _serve(options: ServeOptions, observer: Observers) -> ExitCode:
    identity = options.identity or default_identity()
    try:
        api_client = connect(options.kubeconfig, options.context)
        lease = None
        if options.leader_elect:
            lease = LeaseSettings(
                namespace=options.lease_namespace
                or os.environ.get("POD_NAMESPACE")
                or options.namespace
                or "default",
                name=options.lease_name,
                identity=identity,
                duration=options.lease_duration,
                renew_deadline=options.renew_deadline,
                retry_period=options.retry_period,
            )
        address = parse_address(options.health_address) if options.health_address else None
    except (KubeConfigError, ValueError) as exc:
        log.error("%s", exc)
        return ExitCode.BAD_INPUT
    elector = LeaderElector(api_client, lease) if lease is not None else None
    controller = Controller(
        RolloutApi(api_client),
        ControllerSettings(
            namespace=options.namespace,
            workers=options.workers,
            resync_seconds=options.resync_seconds,
            identity=identity,
        ),
        fence=elector.fence if elector is not None else _unfenced,
        observer=observer,
    )
    health = None
    if address is not None:
        try:
            health = HealthServer(
                address, {"/healthz": controller.alive, "/readyz": controller.ready}
            ).start()
        except OSError as exc:
            log.error("cannot serve health endpoints on %s: %s", options.health_address, exc)
            return ExitCode.BAD_INPUT
        log.info("health endpoints on port %d: /healthz, /readyz", health.port)

    receiver = None
    if options.alert_webhook is not None:
        webhook = options.alert_webhook
        try:
            receiver = AlertReceiver(
                webhook.secret, controller.deliver_alert, address=webhook.address, port=webhook.port
            ).start()
        except OSError as exc:
            log.error("--alert-webhook-port: cannot listen on %s:%d: %s", webhook.address,
                      webhook.port, exc.strerror or exc)  # fmt: skip
            if health is not None:
                health.stop()
            return ExitCode.INFRASTRUCTURE
        log.info("alert webhook on %s", receiver.url)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        log.info("SIGTERM: finishing running steps, then stopping")
        controller.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)
        signal.signal(signal.SIGINT, on_sigterm)
    where = options.namespace or "all namespaces"
    log.info("controller %s watching ModelRollouts in %s", identity, where)
    try:
        run_controller(controller, elector)
    finally:
        if health is not None:
            health.stop()
        if receiver is not None:
            receiver.stop()
    log.info("controller %s stopped", identity)
    return ExitCode.PROMOTED


def _unfenced() -> None:
    return None
