"""`MetricsSource` on a real Prometheus: prometheus-api-client for queries, httpx for exemplars.

Every query of a look over (start, end] is evaluated at `time=end`, so analysing a
past window gives the answer it gave at the time (later samples are not read).
Failures (unreachable, timeout, HTTP 4xx/5xx, invalid JSON, status != success, a
result that is not a matrix) raise `MetricsSourceError` after a few retries of the
transient ones; "no data" is not a failure: the field is None and
`Observation.problems` says which query came back empty, NaN or +Inf for which
version. No message, log line or repr carries a secret.

Exact counts. The requests counter (every status) and the histogram's `_bucket`
series are fetched raw, as range vectors reaching back `end - start` plus
`LOOKBACK_SECONDS` (Prometheus' 5-minute staleness period) from `end`, so every
series that was being scraped holds its last sample at or before `start`. Each
series' rise over the look is `counters.exact_increase`: the difference between its
last sample at or before `end` and its last at or before `start`, a counter reset
adding the new value, a series that appears inside the look counting from 0 (a new
pod's counters start at 0; a process that had served requests before Prometheus
first scraped it would have that history counted once, in that look). The
rises are summed per version (and per `le`); errors are the series whose status
label is the policy's error status, and a version with request series but no
error-status series had 0 errors. No `increase()`: it extrapolates the rise to the
window's edges (x4/3 at a 15 s scrape and 60 s looks, x2 at 30 s), which inflates
counts and their variance and breaks the tests' error rate, and with one sample in
the window it has no answer. The counts are integers, the samples' own values; two
consecutive looks share their boundary sample, so they partition the requests: each
is counted once, in the look whose window holds the scrape that first saw it. A look
that holds no scrape counts 0 (not "no data": the version's series are there); a
version with no series in the whole range is "no series".
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential
from urllib3.util.retry import Retry

from rollout.analysis.counters import exact_increase
from rollout.analysis.observation import (
    Bucket,
    CustomValue,
    Exemplar,
    MetricsSourceError,
    Observation,
    QueryRecord,
    Target,
    VersionCounts,
)
from rollout.analysis.queries import custom_query, exemplar_selector, signal_queries
from rollout.spec import CustomMetric, MetricNames, PrometheusConfig, file_problem

T = TypeVar("T")
_Series = tuple[dict[str, str], list[tuple[float, float]]]  # labels, (time, value) samples
_HTTP_STATUS = re.compile(r"HTTP Status Code (\d+)")
_PROM_ERROR = re.compile(r'"error"\s*:\s*"((?:[^"\\]|\\.)*)"')


class _InvalidAnswer(Exception):
    """Prometheus answered 200 but not with `{"status": "success", ...}` JSON."""


class _HttpStatus(Exception):
    """Prometheus answered an HTTP error; `detail` is its own error message, if any."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(status)
        self.status = status
        self.detail = detail


def _check_answer(response: requests.Response, *args: object, **kwargs: object) -> None:
    """requests response hook: the client library reads `data.result` without checking."""
    if response.status_code != 200:
        return
    try:
        body = response.json()
    except ValueError:
        raise _InvalidAnswer("the answer is not JSON") from None
    if not isinstance(body, dict) or body.get("status") != "success":
        status = body.get("status") if isinstance(body, dict) else None
        raise _InvalidAnswer(f"the answer's status is {status!r}, not 'success'")


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, requests.ConnectionError | requests.Timeout | httpx.TransportError):
        return True
    return isinstance(exc, _HttpStatus) and (exc.status >= 500 or exc.status == 429)


class PrometheusSource:
    """Counts per version from Prometheus; see the module docstring for the guarantees."""

    # Whether the server keeps no exemplars (VictoriaMetrics): asked once, on the first
    # empty exemplars answer, by `_keeps_no_exemplars`.
    _no_exemplars: bool | None = None

    def __init__(
        self,
        config: PrometheusConfig,
        metrics: MetricNames | None = None,
        custom_metrics: tuple[CustomMetric, ...] = (),
        *,
        attempts: int = 3,
        backoff: float = 0.25,
    ) -> None:
        self._metrics = metrics or MetricNames()
        self._custom = custom_metrics
        self._timeout = config.timeout
        self._attempts = attempts
        self._backoff = backoff
        parts = urlsplit(config.url.rstrip("/"))
        secrets = [v.get_secret_value() for v in config.headers.values()]
        headers = {k: v.get_secret_value() for k, v in config.headers.items()}
        auth: tuple[str, str] | None = None
        if parts.password:  # http://user:pass@host: keep it out of every message
            secrets += _basic_auth_secrets(unquote(parts.username or ""), unquote(parts.password))
        if config.bearer_token_file is not None:
            token = _read_secret(config.bearer_token_file, "prometheus.bearerTokenFile")
            secrets.append(token)
            headers["Authorization"] = f"Bearer {token}"
        if config.basic_auth is not None:
            password = _read_secret(
                config.basic_auth.password_file, "prometheus.basicAuth.passwordFile"
            )
            secrets += _basic_auth_secrets(config.basic_auth.username, password)
            auth = (config.basic_auth.username, password)
        self._secrets = tuple(s for s in secrets if s)
        self.url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        session = requests.Session()
        session.verify = config.tls_verify
        session.hooks["response"].append(_check_answer)
        self._client = PrometheusConnect(
            url=config.url.rstrip("/"),
            headers=headers,
            # tenacity retries, with backoff and a bound, below. read=False: a read timeout is
            # raised as requests.ReadTimeout, not wrapped into a "connection failed" error.
            retry=Retry(total=0, read=False),
            auth=auth,
            session=session,
            timeout=config.timeout,
        )
        self._http = httpx.Client(
            base_url=config.url.rstrip("/"),
            headers=headers,
            auth=auth,
            verify=config.tls_verify,
            timeout=config.timeout,
        )

    def __repr__(self) -> str:
        return f"PrometheusSource(url={self.url!r})"

    def close(self) -> None:
        self._http.close()
        self._client._session.close()

    # ------------------------------------------------------------------ observe

    def observe(
        self, target: Target, start: float, end: float, *, custom_window: float | None = None
    ) -> Observation:
        """Exact counts per version over (start, end], every query evaluated at `end`.

        `custom_window` is the `{window}` of the custom metrics' queries (default
        `end - start`); it never changes the counts.
        """
        if not end > start:
            raise ValueError(f"the window must end after it starts (start={start}, end={end})")
        queries = signal_queries(self._metrics, target, end - start)
        records: list[QueryRecord] = []
        problems: list[str] = []
        versions = {"baseline": target.baseline, "candidate": target.candidate}

        request_series = self._matrix("requests", queries.requests, end)
        requests_by_role: dict[str, int | None] = {}
        errors_by_role: dict[str, int | None] = {}
        for role, version in versions.items():
            requests_by_role[role], errors_by_role[role] = self._requests(
                role, version, request_series, start, end, problems
            )
        records.append(
            QueryRecord(
                "requests", queries.requests, end, len(request_series), _note("requests", problems)
            )
        )
        bucket_series = self._matrix("latency", queries.latency, end)
        buckets = {
            role: self._buckets(role, version, bucket_series, start, end, problems)
            for role, version in versions.items()
        }
        records.append(
            QueryRecord(
                "latency", queries.latency, end, len(bucket_series), _note("latency", problems)
            )
        )
        window = custom_window if custom_window is not None else end - start
        custom = tuple(
            self._custom_value(m, target, window, end, records, problems) for m in self._custom
        )
        return Observation(
            start=start,
            end=end,
            baseline=VersionCounts(
                requests_by_role["baseline"], errors_by_role["baseline"], buckets["baseline"]
            ),
            candidate=VersionCounts(
                requests_by_role["candidate"], errors_by_role["candidate"], buckets["candidate"]
            ),
            custom=custom,
            queries=tuple(records),
            problems=tuple(problems),
        )

    def _requests(
        self,
        role: str,
        version: str,
        series: list[_Series],
        start: float,
        end: float,
        problems: list[str],
    ) -> tuple[int | None, int | None]:
        """(requests, errors) of one version: every status, and the error status alone.

        A version with request series but none of the error status had 0 errors: that
        series often appears only with the first error."""
        mine = [s for s in series if s[0].get(self._metrics.version_label) == version]
        where = f"the {role} (version {version!r})"
        if not mine:
            problems.append(f"requests: no series for {where}")
            return None, None
        bad = next((v for _, samples in mine for v in _invalid(samples)), None)
        if bad is not None:
            problems.append(f"requests: {bad} for {where} (a counter sample)")
            return None, None
        requests = errors = 0
        for labels, samples in mine:
            rise = exact_increase(samples, start, end)
            requests += rise
            if labels.get(self._metrics.status_label) == self._metrics.error_status:
                errors += rise
        return requests, errors

    def _buckets(
        self,
        role: str,
        version: str,
        series: list[_Series],
        start: float,
        end: float,
        problems: list[str],
    ) -> tuple[Bucket, ...] | None:
        """Cumulative bucket counts of one version: each `_bucket` series' exact rise,
        summed per `le` over pods, instances and any other label."""
        per_le: dict[float, int] = {}
        bad: float | None = None
        for labels, samples in series:
            if labels.get(self._metrics.version_label) != version:
                continue
            try:
                le = float(labels["le"])
            except (KeyError, ValueError):
                raise MetricsSourceError(
                    f"Prometheus at {self.url}: latency series without a numeric 'le' label"
                ) from None
            invalid = _invalid(samples)
            if invalid:
                bad = invalid[0] if bad is None else bad
                continue
            per_le[le] = per_le.get(le, 0) + exact_increase(samples, start, end)
        where = f"the {role} (version {version!r})"
        if bad is not None:
            problems.append(f"latency: {bad} for {where} (a bucket counter sample)")
            return None
        if not per_le:
            problems.append(f"latency: no histogram series for {where}")
            return None
        if max(per_le) != math.inf:
            problems.append(f'latency: no le="+Inf" bucket for {where}')
            return None
        buckets: list[Bucket] = []
        highest = 0
        for le in sorted(per_le):
            # Per series the rises are cumulative in `le`; only pods with different bucket
            # layouts (a bound some pods lack) can break the order: the running max keeps it.
            highest = max(highest, per_le[le])
            buckets.append(Bucket(le=le, count=highest))
        return tuple(buckets)

    def _custom_value(
        self,
        metric: CustomMetric,
        target: Target,
        window: float,
        end: float,
        records: list[QueryRecord],
        problems: list[str],
    ) -> CustomValue:
        values: dict[str, float | None] = {}
        signal = f"custom:{metric.name}"
        for role, version in (("baseline", target.baseline), ("candidate", target.candidate)):
            promql = custom_query(metric, self._metrics, target.model, version, window)
            rows = self._vector(signal, promql, end)
            where = f"the {role} (version {version!r})"
            value: float | None = None
            if not rows:
                problems.append(f"{signal}: empty result for {where}")
            elif len(rows) > 1:
                problems.append(
                    f"{signal}: {len(rows)} series for {where}; aggregate the query to one, "
                    "e.g. with sum(...)"
                )
            elif not math.isfinite(rows[0][1]):
                problems.append(f"{signal}: {rows[0][1]} for {where}")
            else:
                value = rows[0][1]
            values[role] = value
            records.append(QueryRecord(signal, promql, end, len(rows), _note(signal, problems)))
        return CustomValue(metric.name, values["baseline"], values["candidate"])

    def _vector(self, signal: str, promql: str, at: float) -> list[tuple[dict[str, str], float]]:
        """Run an instant query at `at`; (labels, value) per series. A scalar is one row."""
        data: Any = self._run(signal, lambda: self._custom_query(promql, at))
        try:
            if isinstance(data, list) and len(data) == 2 and not isinstance(data[0], dict):
                return [({}, float(data[1]))]  # resultType scalar
            return [(dict(row["metric"]), float(row["value"][1])) for row in data]
        except (KeyError, TypeError, ValueError, IndexError):
            raise MetricsSourceError(
                f"Prometheus at {self.url} answered the {signal} query with a result that is "
                "not an instant vector"
            ) from None

    def _matrix(self, signal: str, promql: str, at: float) -> list[_Series]:
        """Run a range-vector selector at `at`; (labels, [(time, value), ...]) per series."""
        data: Any = self._run(signal, lambda: self._custom_query(promql, at))
        try:
            if not isinstance(data, list):
                raise TypeError("the result is not a list of series")
            return [
                (
                    {str(k): str(v) for k, v in row["metric"].items()},
                    sorted((float(t), float(v)) for t, v in row["values"]),
                )
                for row in data
            ]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise MetricsSourceError(
                f"Prometheus at {self.url} answered the {signal} query with a result that is "
                "not a range vector (matrix)"
            ) from None

    def _custom_query(self, promql: str, at: float) -> Any:
        try:
            return self._client.custom_query(promql, params={"time": f"{at:.3f}"})
        except PrometheusApiClientException as exc:
            raise self._http_status(str(exc)) from None

    def _http_status(self, text: str) -> _HttpStatus:
        status = _HTTP_STATUS.search(text)
        detail = _PROM_ERROR.search(text)
        return _HttpStatus(
            status=int(status.group(1)) if status else 0,
            detail=detail.group(1)[:300] if detail else "",
        )

    # ------------------------------------------------------------------ exemplars

    def exemplars(
        self,
        target: Target,
        version: str,
        start: float,
        end: float,
        *,
        min_latency: float | None = None,
        errors_only: bool = False,
    ) -> tuple[Exemplar, ...]:
        """Exemplars of a version in [start, end] that carry a `trace_id` label.

        Latency exemplars come from the histogram's `_bucket` series; `errors_only` reads
        the failed requests' counter instead and takes each trace's latency from the
        histogram when that has the same trace (NaN otherwise).
        """
        latency = self._exemplars(
            exemplar_selector(self._metrics, target.model, version, errors_only=False),
            version,
            start,
            end,
        )
        if errors_only:
            seconds = {e.trace_id: e.value for e in latency}
            failed = self._exemplars(
                exemplar_selector(self._metrics, target.model, version, errors_only=True),
                version,
                start,
                end,
            )
            chosen = [
                Exemplar(
                    e.trace_id, version, seconds.get(e.trace_id, math.nan), e.timestamp, e.labels
                )
                for e in failed
            ]
        else:
            chosen = list(latency)
        if min_latency is not None:
            chosen = [e for e in chosen if e.value >= min_latency]
        return tuple(chosen)

    def _exemplars(self, selector: str, version: str, start: float, end: float) -> list[Exemplar]:
        params = {"query": selector, "start": f"{start:.3f}", "end": f"{end:.3f}"}
        data: Any = self._run(
            "exemplars", lambda: self._get_json("/api/v1/query_exemplars", params)
        )
        if not data and self._keeps_no_exemplars():
            raise MetricsSourceError(
                f"{self.url}: no exemplars from this backend (VictoriaMetrics keeps none; "
                "its /api/v1/query_exemplars always answers empty)"
            )
        found: list[Exemplar] = []
        try:
            for series in data:
                for item in series["exemplars"]:
                    labels = dict(item.get("labels", {}))
                    trace_id = labels.get("trace_id")
                    if not trace_id:
                        continue
                    found.append(
                        Exemplar(
                            trace_id=str(trace_id),
                            version=version,
                            value=float(item["value"]),
                            timestamp=float(item["timestamp"]),
                            labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
                        )
                    )
        except (KeyError, TypeError, ValueError):
            raise MetricsSourceError(
                f"Prometheus at {self.url} answered the exemplars query with an invalid shape"
            ) from None
        return found

    def _keeps_no_exemplars(self) -> bool:
        if self._no_exemplars is None:
            self._no_exemplars = is_victoria_metrics(self._http)
        return self._no_exemplars

    def _get_json(self, path: str, params: dict[str, str]) -> Any:
        response = self._http.get(path, params=params)
        if response.status_code != 200:
            raise self._http_status(f"HTTP Status Code {response.status_code} {response.text}")
        try:
            body = response.json()
        except ValueError:
            raise _InvalidAnswer("the answer is not JSON") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            raise _InvalidAnswer("the answer's status is not 'success'")
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
            raise MetricsSourceError(self._redact(self._describe(signal, exc))) from None

    def _describe(self, signal: str, exc: Exception) -> str:
        where = f"Prometheus at {self.url}"
        tries = f" (after {self._attempts} tries)" if _transient(exc) else ""
        if isinstance(exc, requests.Timeout | httpx.TimeoutException):
            reason = f"timed out after {self._timeout:g}s{tries}"
        elif isinstance(exc, requests.ConnectionError | httpx.TransportError):
            reason = f"is unreachable (connection failed){tries}; is the URL right and is it up?"
        elif isinstance(exc, _HttpStatus):
            detail = f": {exc.detail}" if exc.detail else ""
            reason = f"answered HTTP {exc.status}{tries}{detail}"
        elif isinstance(exc, _InvalidAnswer):
            reason = f"answered garbage: {exc}"
        elif isinstance(exc, requests.RequestException | httpx.HTTPError):
            reason = f"request failed ({type(exc).__name__})"
        else:
            reason = f"answered something unreadable ({type(exc).__name__})"
        return f"{where} {reason} [{signal} query]"

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _invalid(samples: list[tuple[float, float]]) -> list[float]:
    """Values no counter can have (NaN, infinite, negative)."""
    return [v for _, v in samples if not (math.isfinite(v) and v >= 0)]


def _note(signal: str, problems: Iterable[str]) -> str:
    return "; ".join(p for p in problems if p.startswith(f"{signal}:"))


def _basic_auth_secrets(username: str, password: str) -> list[str]:
    """The password, and the Authorization header's base64 of `user:password`: a server
    that quotes the request's headers in its error must not get either into a message."""
    encoded = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return [password, encoded]


def _read_secret(path: Path, field: str) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise file_problem(str(path), field, f"cannot read the file: {reason}") from None


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
