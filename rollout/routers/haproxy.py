"""HAProxy router: the two servers' weights through the runtime API on the admin socket.

The weights 0..100 are HAProxy server weights as they are (0 = no traffic), so
`get weight` reads back exactly what was set. One command per connection, the
runtime API's non-interactive mode: HAProxy answers and closes. No retries here;
the driver decides what to do with a RouterError.
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import Field, model_validator

from rollout.routers.base import (
    RouterError,
    RouterKind,
    RouterModel,
    RouterPlace,
    Weights,
    relative_share,
)
from rollout.spec_base import NAME_PATTERN, Seconds

_GET_WEIGHT = re.compile(r"^(\d+) \(initial (\d+)\)$")
_MAX_ANSWER_BYTES = 64 * 1024


class HAProxyRouterConfig(RouterModel):
    kind: Literal["haproxy"]
    admin_socket: str = Field(
        description="HAProxy runtime API: a unix socket path or host:port (stats socket ipv4@)"
    )
    backend: str = Field(pattern=NAME_PATTERN)
    baseline_server: str = Field(pattern=NAME_PATTERN)
    candidate_server: str = Field(pattern=NAME_PATTERN)
    timeout: Seconds = Field(5.0, gt=0)

    @model_validator(mode="after")
    def _distinct(self) -> HAProxyRouterConfig:
        if self.baseline_server == self.candidate_server:
            raise ValueError("baselineServer and candidateServer must be different servers")
        return self


@dataclass(frozen=True)
class AdminAddress:
    """Where the runtime API listens: a unix socket path, or host and port of a TCP socket."""

    path: str | None = None
    host: str = ""
    port: int = 0

    @classmethod
    def parse(cls, text: str) -> AdminAddress:
        """'/run/haproxy/admin.sock', 'unix@/x.sock', '127.0.0.1:9999' or 'ipv4@host:port'."""
        text = text.strip()
        if text.startswith("unix@"):
            return cls(path=text.removeprefix("unix@"))
        text = text.removeprefix("ipv4@")
        host, sep, port = text.rpartition(":")
        if sep and host and "/" not in text and port.isdigit():
            return cls(host=host, port=int(port))
        return cls(path=text)

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix socket {self.path}"
        return f"TCP socket {self.host}:{self.port}"


def plan_weight_changes(config: HAProxyRouterConfig, weights: Weights) -> list[tuple[str, int]]:
    """The `set weight` commands for `weights`, larger target first.

    Setting the larger target first means that between the two commands one server
    always has weight >= 50: HAProxy never sees both servers at 0 (it answers 503
    then), whatever the current weights are, and without reading them first. The
    traffic share in between lies between the old and the new share either way.
    """
    changes = [
        (config.baseline_server, weights.baseline),
        (config.candidate_server, weights.candidate),
    ]
    changes.sort(key=lambda change: change[1], reverse=True)
    return changes


class HAProxyRouter:
    """`TrafficRouter` over HAProxy's runtime API (`set weight` / `get weight`)."""

    def __init__(self, config: HAProxyRouterConfig) -> None:
        self.config = config
        self.address = AdminAddress.parse(config.admin_socket)

    def __repr__(self) -> str:
        return f"HAProxyRouter({self.address}, backend={self.config.backend})"

    def get_weights(self) -> Weights:
        """The traffic share the two servers' weights give (equal to them when they sum to 100)."""
        baseline, candidate = self._read_raw()
        try:
            return relative_share(baseline, candidate)
        except ValueError as exc:
            raise RouterError(
                f"HAProxy backend {self.config.backend!r}: {exc} (HAProxy answers 503)"
            ) from None

    def set_weights(self, weights: Weights) -> None:
        for server, weight in plan_weight_changes(self.config, weights):
            target = f"{self.config.backend}/{server}"
            answer = self._command(f"set weight {target} {weight}")
            if answer:  # `set weight` answers nothing when it worked
                raise self._refused(f"set weight {target} {weight}", answer)

    def verify(self, weights: Weights) -> bool | None:
        """True when HAProxy reports exactly these weights; None when it cannot be read."""
        try:
            raw = self._read_raw()
        except RouterError:
            return None
        return raw == (weights.baseline, weights.candidate)

    def _read_raw(self) -> tuple[int, int]:
        return (
            self._get_weight(self.config.baseline_server),
            self._get_weight(self.config.candidate_server),
        )

    def _get_weight(self, server: str) -> int:
        target = f"{self.config.backend}/{server}"
        answer = self._command(f"get weight {target}")
        match = _GET_WEIGHT.match(answer)
        if match is None:
            raise self._refused(f"get weight {target}", answer)
        return int(match.group(1))

    def _refused(self, command: str, answer: str) -> RouterError:
        first_line = answer.splitlines()[0] if answer else "(empty answer)"
        if first_line.startswith("Permission denied"):
            hint = "the stats socket must be declared with `level admin` in haproxy.cfg"
        elif first_line.startswith(("No such server", "No such backend")):
            hint = (
                f"check router.backend ({self.config.backend!r}), router.baselineServer "
                f"({self.config.baseline_server!r}) and router.candidateServer "
                f"({self.config.candidate_server!r}) against haproxy.cfg"
            )
        else:
            hint = "see HAProxy's management guide for this command"
        return RouterError(f"HAProxy at {self.address} refused {command!r}: {first_line!r}; {hint}")

    def _command(self, command: str) -> str:
        """Send one command, read the answer until HAProxy closes; the answer, stripped."""
        timeout = self.config.timeout
        deadline = time.monotonic() + timeout
        try:
            with self._connect(timeout) as sock:
                sock.sendall(command.encode("ascii") + b"\n")
                chunks: list[bytes] = []
                size = 0
                while chunk := sock.recv(4096):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > _MAX_ANSWER_BYTES:
                        raise RouterError(f"HAProxy at {self.address}: answer too long")
                    sock.settimeout(max(deadline - time.monotonic(), 0.001))
        except FileNotFoundError:
            raise RouterError(
                f"HAProxy runtime API at {self.address}: no such socket file; check that "
                "HAProxy runs and that haproxy.cfg has `stats socket <path> level admin` "
                "with the same path as router.adminSocket"
            ) from None
        except ConnectionRefusedError:
            raise RouterError(
                f"HAProxy runtime API at {self.address}: connection refused; is HAProxy "
                "running, and does router.adminSocket match its `stats socket` line?"
            ) from None
        except TimeoutError:
            raise RouterError(
                f"HAProxy runtime API at {self.address}: no answer to {command!r} within "
                f"{timeout:g}s (router.timeout); is HAProxy overloaded or stopped?"
            ) from None
        except OSError as exc:
            raise RouterError(
                f"HAProxy runtime API at {self.address}: {exc.strerror or exc}; "
                "check router.adminSocket and that HAProxy runs"
            ) from None
        return b"".join(chunks).decode("utf-8", errors="replace").strip()

    def _connect(self, timeout: float) -> socket.socket:
        if self.address.path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(self.address.path)
            except BaseException:
                sock.close()
                raise
            return sock
        return socket.create_connection((self.address.host, self.address.port), timeout=timeout)


def build(config: HAProxyRouterConfig, place: RouterPlace) -> HAProxyRouter:
    return HAProxyRouter(config)


KIND: Final = RouterKind(HAProxyRouterConfig, build)
