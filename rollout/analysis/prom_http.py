"""One httpx client per Prometheus: queries, retries, error mapping, secrets kept out.

`PrometheusClient` is the only place that talks HTTP to Prometheus (or anything that
speaks its API, such as VictoriaMetrics). It is thread-safe (one httpx connection pool),
so every rollout reading the same Prometheus with the same credentials shares it.

Failures raise `MetricsSourceError` naming the Prometheus and the signal: unreachable,
timeout (both retried with exponential backoff, as are HTTP 5xx and 429), HTTP 4xx/5xx
with Prometheus' own error text, an answer that is not JSON or whose status is not
`success`, a result of the wrong type. Each answer's JSON is decoded once. No message
or repr carries a secret: the bearer token, header values, the basic-auth password (and
its base64 form) and a password in the URL are replaced by `***` in every message.

`transport` (an `httpx.BaseTransport`, e.g. `httpx.MockTransport`) replaces the network,
so the error mapping is tested without a server.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from rollout.analysis.observation import MetricsSourceError
from rollout.spec import PrometheusConfig, file_problem

T = TypeVar("T")
Series = tuple[dict[str, str], list[tuple[float, float]]]  # labels, (time, value) samples
Row = tuple[dict[str, str], float]  # labels, value of an instant vector

# A query longer than this goes as a POST form (Prometheus and VictoriaMetrics take both):
# a batch of many models' versions must not hit a server's URL length limit.
MAX_GET_QUERY = 4096


class _InvalidAnswer(Exception):
    """Prometheus answered 200 but not with `{"status": "success", ...}` JSON."""


class _HttpStatus(Exception):
    """Prometheus answered an HTTP error; `detail` is its own error message, if any."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(status)
        self.status = status
        self.detail = detail


class _WrongShape(Exception):
    """The answer's `data` is not what the query must return (e.g. not a matrix)."""


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, _HttpStatus) and (exc.status >= 500 or exc.status == 429)


class PrometheusClient:
    """HTTP to one Prometheus with one set of credentials; see the module docstring."""

    def __init__(
        self,
        config: PrometheusConfig,
        *,
        attempts: int = 3,
        backoff: float = 0.25,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._timeout = config.timeout
        self._no_exemplars: bool | None = None
        self._attempts = attempts
        self._backoff = backoff
        parts = urlsplit(config.url.rstrip("/"))
        secrets = [v.get_secret_value() for v in config.headers.values()]
        headers = {k: v.get_secret_value() for k, v in config.headers.items()}
        auth: httpx.BasicAuth | None = None
        if parts.username or parts.password:  # http://user:pass@host: sent, never shown
            username, password = unquote(parts.username or ""), unquote(parts.password or "")
            secrets += _basic_auth_secrets(username, password) if password else []
            auth = httpx.BasicAuth(username, password)
        if config.bearer_token_file is not None:
            token = read_secret(config.bearer_token_file, "prometheus.bearerTokenFile")
            secrets.append(token)
            headers["Authorization"] = f"Bearer {token}"
        if config.basic_auth is not None:
            password = read_secret(
                config.basic_auth.password_file, "prometheus.basicAuth.passwordFile"
            )
            secrets += _basic_auth_secrets(config.basic_auth.username, password)
            auth = httpx.BasicAuth(config.basic_auth.username, password)
        self._secrets = tuple(s for s in secrets if s)
        self.url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        self._http = httpx.Client(
            base_url=self.url,
            headers=headers,
            auth=auth,
            verify=config.tls_verify,
            timeout=config.timeout,
            follow_redirects=True,  # as requests did; Authorization is dropped off-origin
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"PrometheusClient(url={self.url!r})"

    def keeps_no_exemplars(self) -> bool:
        """Whether the server keeps no exemplars (VictoriaMetrics): asked once per client,
        on the first empty exemplars answer."""
        if self._no_exemplars is None:
            self._no_exemplars = is_victoria_metrics(self._http)
        return self._no_exemplars

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ queries

    def matrix(self, signal: str, promql: str, at: float) -> list[Series]:
        """An instant query of a range-vector selector at `at`: (labels, samples) per series,
        the samples sorted by time."""
        data = self._query(signal, promql, at)

        def parse() -> list[Series]:
            if data.get("resultType", "matrix") != "matrix":
                raise TypeError("not a matrix")
            return [(_labels(row["metric"]), _samples(row["values"])) for row in data["result"]]

        return self._shaped(signal, "a range vector (matrix)", parse)

    def vector(self, signal: str, promql: str, at: float) -> list[Row]:
        """An instant query at `at`: (labels, value) per series; a scalar is one row."""
        data = self._query(signal, promql, at)

        def parse() -> list[Row]:
            result = data["result"]
            if data.get("resultType") == "scalar" or (
                isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict)
            ):
                return [({}, float(result[1]))]
            if data.get("resultType", "vector") != "vector":
                raise TypeError("not a vector")
            return [
                ({str(k): str(v) for k, v in row["metric"].items()}, float(row["value"][1]))
                for row in result
            ]

        return self._shaped(signal, "an instant vector", parse)

    def exemplars(self, selector: str, start: float, end: float) -> list[dict[str, Any]]:
        """`/api/v1/query_exemplars` over [start, end]: the series with their exemplars."""
        params = {"query": selector, "start": f"{start:.3f}", "end": f"{end:.3f}"}
        data = self._run("exemplars", lambda: self._request("/api/v1/query_exemplars", params))
        if not isinstance(data, list):
            raise MetricsSourceError(
                f"Prometheus at {self.url} answered the exemplars query with an invalid shape"
            )
        return data

    def _query(self, signal: str, promql: str, at: float) -> Any:
        params = {"query": promql, "time": f"{at:.3f}"}
        return self._run(signal, lambda: self._request("/api/v1/query", params))

    def _shaped(self, signal: str, kind: str, parse: Callable[[], T]) -> T:
        try:
            return parse()
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            raise MetricsSourceError(self._wrong(signal, kind)) from None

    def _wrong(self, signal: str, kind: str) -> str:
        return (
            f"Prometheus at {self.url} answered the {signal} query with a result that is not {kind}"
        )

    def _request(self, path: str, params: dict[str, str]) -> Any:
        """One HTTP exchange: `data` of a success answer, or the exception that says why not."""
        if len(params.get("query", "")) > MAX_GET_QUERY:
            response = self._http.post(path, data=params)
        else:
            response = self._http.get(path, params=params)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200:
            error = body.get("error") if isinstance(body, dict) else None
            raise _HttpStatus(response.status_code, str(error)[:300] if error else "")
        if body is None:
            raise _InvalidAnswer("the answer is not JSON")
        status = body.get("status") if isinstance(body, dict) else None
        if status != "success":
            raise _InvalidAnswer(f"the answer's status is {status!r}, not 'success'")
        return body.get("data")

    # ------------------------------------------------------------------ failures

    def _run(self, signal: str, call: Callable[[], T]) -> T:
        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=self._backoff, max=4.0),
            retry=retry_if_exception(_transient),
            reraise=True,
        )
        try:
            return retrying(call)
        except Exception as exc:
            raise MetricsSourceError(self.redact(self._describe(signal, exc))) from None

    def _describe(self, signal: str, exc: Exception) -> str:
        where = f"Prometheus at {self.url}"
        tries = f" (after {self._attempts} tries)" if _transient(exc) else ""
        if isinstance(exc, httpx.TimeoutException):
            reason = f"timed out after {self._timeout:g}s{tries}"
        elif isinstance(exc, httpx.TransportError):
            reason = f"is unreachable (connection failed){tries}; is the URL right and is it up?"
        elif isinstance(exc, _HttpStatus):
            detail = f": {exc.detail}" if exc.detail else ""
            reason = f"answered HTTP {exc.status}{tries}{detail}"
        elif isinstance(exc, _InvalidAnswer):
            reason = f"answered garbage: {exc}"
        elif isinstance(exc, httpx.HTTPError):
            reason = f"request failed ({type(exc).__name__})"
        else:
            reason = f"answered something unreadable ({type(exc).__name__})"
        return f"{where} {reason} [{signal} query]"

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _labels(metric: Any) -> dict[str, str]:
    # map() keeps the check in C: it runs once per label of every series of a batch.
    if not isinstance(metric, dict) or not all(map(isinstance, metric.values(), _STRINGS)):
        raise TypeError("labels are not a map of strings")
    return metric  # a JSON object's keys are strings


_STRINGS = itertools.repeat(str)


def _samples(values: Any) -> list[tuple[float, float]]:
    samples = [(float(t), float(v)) for t, v in values]
    samples.sort()  # in time order from Prometheus already: a linear pass
    return samples


def _basic_auth_secrets(username: str, password: str) -> list[str]:
    """The password, and the Authorization header's base64 of `user:password`: a server
    that quotes the request's headers in its error must not get either into a message."""
    encoded = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return [password, encoded]


def read_secret(path: Path, field: str) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise file_problem(str(path), field, f"cannot read the file: {reason}") from None


def client_key(config: PrometheusConfig) -> tuple[object, ...]:
    """What makes two configs talk to the same Prometheus as the same caller. Held only as a
    dictionary key (never shown): the header values are in it."""
    basic = config.basic_auth
    return (
        config.url.rstrip("/"),
        tuple(sorted((k, v.get_secret_value()) for k, v in config.headers.items())),
        str(config.bearer_token_file) if config.bearer_token_file else None,
        (basic.username, str(basic.password_file)) if basic else None,
        config.tls_verify,
        config.timeout,
    )


def is_victoria_metrics(http: httpx.Client) -> bool:
    """Whether the server behind `http` is VictoriaMetrics, from one buildinfo request.

    Its range selectors answer raw samples as Prometheus' do, so the counts need nothing
    else; but 1.79 keeps no exemplars and answers `/api/v1/query_exemplars` with an
    empty success. Prometheus' `/api/v1/status/buildinfo` names its version;
    VictoriaMetrics' names none (`"data": {}`) and its answers carry `X-Server-Hostname`.
    Any failure is "not known to be": the empty answer then stays "no exemplars found"."""
    try:
        response = http.get("/api/v1/status/buildinfo")
        body = response.json()
    except (httpx.HTTPError, ValueError):
        return False
    if response.status_code != 200 or not isinstance(body, dict):
        return False
    data = body.get("data")
    return "X-Server-Hostname" in response.headers or (
        body.get("status") == "success" and isinstance(data, dict) and "version" not in data
    )
