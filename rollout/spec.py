"""The files users write: a `ModelRollout` spec and a rollout `Policy`.

Both are Kubernetes-shaped YAML (camelCase keys) so the in-cluster controller
reads the same documents as `rollout run`. Loading never touches traffic: a bad
file raises `SpecError` listing every problem with its field path and a fix.
"""

from __future__ import annotations

import itertools
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

# Router configs live with their routers (routers/registry.py); the kinds' shared base is
# spec_base.py. Names other modules import from here are re-exported explicitly (`as`).
from rollout.routers.haproxy import HAProxyRouterConfig as HAProxyRouterConfig
from rollout.routers.registry import RouterConfig as RouterConfig
from rollout.routers.registry import union_tags
from rollout.spec_base import NAME_PATTERN, Seconds
from rollout.spec_base import SpecModel as _Model
from rollout.spec_base import format_duration as format_duration
from rollout.spec_base import parse_duration as parse_duration

API_VERSION: Final = "rollout.mlops.dev/v1alpha1"
MAX_FILE_BYTES = 256 * 1024
POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"
PACKAGED_POLICY_DIR = Path(__file__).resolve().parent / "_policies"

# Label values travel into PromQL and into HAProxy/Kubernetes objects. The queries
# escape them anyway; refusing quotes, braces and newlines here gives a clear error early.
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+:/-]{0,62}$"
METRIC_PATTERN = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"
LABEL_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"

_USERINFO_PASSWORD = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/@:]*:)[^/@]*@")
# ---------------------------------------------------------------------------- policy


class InconclusiveAction(StrEnum):
    PAUSE = "pause"
    ROLLBACK = "rollback"


class OutageAction(StrEnum):
    ROLLBACK = "rollback"
    PAUSE = "pause"


class AlertAction(StrEnum):
    PAUSE = "pause"
    ROLLBACK = "rollback"


class AlertRule(_Model):
    """What a firing alert on the candidate does (`rollout run --alert-webhook-port`)."""

    action: AlertAction = AlertAction.PAUSE


class Step(_Model):
    """One traffic step: the candidate's share of traffic and how long to hold it."""

    weight: int = Field(
        ge=0,
        le=99,
        description="candidate's percent of traffic, 0-99 (0: judged before any traffic "
        "moves, on what reaches it otherwise, e.g. k8s-service's blue/green)",
    )
    hold: Seconds = Field(description="time to hold this weight while analysing")


class MetricNames(_Model):
    """Metric and label names of the metrics contract; defaults follow DESIGN.md."""

    requests: str = Field("inference_requests_total", pattern=METRIC_PATTERN)
    latency: str = Field("inference_latency_seconds", pattern=METRIC_PATTERN)
    model_label: str = Field("model_name", pattern=LABEL_PATTERN)
    version_label: str = Field("model_version", pattern=LABEL_PATTERN)
    status_label: str = Field("status", pattern=LABEL_PATTERN)
    error_status: str = Field("error", pattern=r"^[^\"\\\n\r{}]{1,63}$")


class LatencyRule(_Model):
    quantile: float = Field(0.95, gt=0.5, lt=1.0)
    max_regression: float = Field(
        0.20, ge=0.0, le=10.0, description="allowed relative rise of the quantile, 0.20 = +20%"
    )


class ErrorRule(_Model):
    max_increase: float = Field(
        0.0,
        ge=0.0,
        le=10.0,
        description="tolerated relative rise of the error rate before it counts as a regression",
    )


class SloGuards(_Model):
    """Absolute bounds beside the relative rules; off when unset."""

    max_error_rate: float | None = Field(None, gt=0.0, lt=1.0)
    max_latency_seconds: float | None = Field(None, gt=0.0)


class Direction(StrEnum):
    INCREASE_IS_BAD = "increase-is-bad"
    DECREASE_IS_BAD = "decrease-is-bad"


class CustomMetric(_Model):
    """Any PromQL evaluated per version. `{version_selector}` stands for the version's
    label matchers (already escaped), `{window}` for the range of the look."""

    name: str = Field(pattern=NAME_PATTERN)
    query: str = Field(min_length=1, max_length=4096)
    direction: Direction = Direction.INCREASE_IS_BAD
    max_relative_change: float | None = Field(None, ge=0.0)
    max_value: float | None = None
    min_value: float | None = None

    @field_validator("query")
    @classmethod
    def _has_selector(cls, query: str) -> str:
        if "{version_selector}" not in query:
            raise ValueError(
                "the query must contain {version_selector} where the version's label "
                "matchers go, e.g. sum(rate(my_metric{{version_selector}}[{window}]))"
            )
        return query

    @model_validator(mode="after")
    def _has_rule(self) -> CustomMetric:
        if self.max_relative_change is None and self.max_value is None and self.min_value is None:
            raise ValueError("set maxRelativeChange (against the baseline), maxValue or minValue")
        return self


class SequentialJudge(_Model):
    kind: Literal["sequential"] = "sequential"


class KayentaJudge(_Model):
    """Kayenta's NetflixACAJudge over per-interval values of each metric."""

    kind: Literal["kayenta"]
    marginal_score: float = Field(75.0, ge=0.0, le=100.0)
    pass_score: float = Field(95.0, ge=0.0, le=100.0)
    group_weights: dict[str, float] = Field(default_factory=dict)
    tolerance: float = Field(0.25, ge=0.0)
    confidence_level: float = Field(0.98, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> KayentaJudge:
        if self.marginal_score > self.pass_score:
            raise ValueError("marginalScore must not exceed passScore")
        return self


JudgeConfig = Annotated[SequentialJudge | KayentaJudge, Field(discriminator="kind")]


class OutageRule(_Model):
    """What to do when Prometheus or the router stays unreachable."""

    max_duration: Seconds = Field(300.0, gt=0)
    action: OutageAction = OutageAction.ROLLBACK


class AnalysisSettings(_Model):
    interval: Seconds = Field(30.0, ge=1.0, description="time between looks")
    window: Seconds | None = Field(
        None, description="range of each look; defaults to the interval (non-overlapping looks)"
    )

    @model_validator(mode="after")
    def _window_covers_interval(self) -> AnalysisSettings:
        if self.window is not None and self.window < self.interval:
            raise ValueError("window must be at least the interval, or every look misses data")
        return self

    @property
    def look_window(self) -> float:
        return self.window if self.window is not None else self.interval


class Policy(_Model):
    """How a candidate is rolled out and judged."""

    name: str = Field("custom", pattern=NAME_PATTERN)
    steps: tuple[Step, ...] = Field(min_length=1, max_length=50)
    analysis: AnalysisSettings = AnalysisSettings()
    latency: LatencyRule = LatencyRule()
    errors: ErrorRule = ErrorRule()
    slo: SloGuards = SloGuards()
    alpha: float = Field(
        0.01, gt=0.0, lt=1.0, description="false-rollback rate of the whole rollout"
    )
    min_requests: int = Field(200, ge=1, description="requests per version before a step may pass")
    on_inconclusive: InconclusiveAction = InconclusiveAction.PAUSE
    inconclusive_grace: Seconds = Field(
        0.0, description="extra time past a step's hold to wait for enough data"
    )
    outage: OutageRule = OutageRule()
    alerts: AlertRule = AlertRule()
    metrics: MetricNames = MetricNames()
    custom_metrics: tuple[CustomMetric, ...] = ()
    judge: JudgeConfig = SequentialJudge()

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: tuple[Step, ...]) -> tuple[Step, ...]:
        weights = [s.weight for s in steps]
        if any(b <= a for a, b in itertools.pairwise(weights)):
            raise ValueError(
                f"step weights must increase strictly, got {weights}; "
                "promotion to 100 follows the last step"
            )
        return steps

    @model_validator(mode="after")
    def _unique_custom(self) -> Policy:
        names = [m.name for m in self.custom_metrics]
        if len(names) != len(set(names)):
            raise ValueError("customMetrics names must be unique")
        return self


class PolicyFile(_Model):
    api_version: Literal["rollout.mlops.dev/v1alpha1"] = API_VERSION
    kind: Literal["RolloutPolicy"] = "RolloutPolicy"
    metadata: Metadata
    spec: Policy


# ---------------------------------------------------------------------------- spec


class Metadata(_Model):
    name: str = Field(pattern=NAME_PATTERN)
    namespace: str = Field("default", pattern=NAME_PATTERN)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class VersionRef(_Model):
    version: str = Field(pattern=VERSION_PATTERN, description="the model_version label value")


class BasicAuth(_Model):
    username: str = Field(min_length=1)
    password_file: Path


class PrometheusConfig(_Model):
    url: str = Field(
        pattern=r"^https?://[^\s]+$", description="base URL, e.g. http://prometheus:9090"
    )
    bearer_token_file: Path | None = None
    basic_auth: BasicAuth | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    tls_verify: bool = True
    timeout: Seconds = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _one_auth(self) -> PrometheusConfig:
        if self.bearer_token_file is not None and self.basic_auth is not None:
            raise ValueError("set bearerTokenFile or basicAuth, not both")
        return self

    def __repr_args__(self) -> Any:
        """repr() and str() show a password in the URL (http://user:pass@host) as ***."""
        for name, value in super().__repr_args__():
            if name == "url" and isinstance(value, str):
                value = _USERINFO_PASSWORD.sub(r"\1***@", value)
            yield name, value


class EvidenceConfig(_Model):
    trace_link_template: str = Field(
        "http://localhost:16686/trace/{trace_id}",
        description="URL with {trace_id}, e.g. Jaeger or Grafana Tempo explore",
    )
    max_exemplars: int = Field(10, ge=0, le=1000)

    @field_validator("trace_link_template")
    @classmethod
    def _has_trace_id(cls, template: str) -> str:
        if "{trace_id}" not in template:
            raise ValueError("the template must contain {trace_id}")
        return template


class NoticeKind(StrEnum):
    """What a notification tells: a step's weights applied, or the rollout's decision."""

    STEP = "step"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    PAUSED = "paused"
    ABORTED = "aborted"


def http_url_problem(value: str) -> str | None:
    """Why `value` is not an http(s) URL with a host; None when it is. Never echoes the
    value: a webhook URL often carries its token."""
    if not value or any(c.isspace() for c in value):
        return "not a URL (empty, or has spaces)"
    try:
        parts = urlsplit(value)
        _ = parts.port  # a bad port raises here
    except ValueError:
        return "not a URL (its host or port cannot be parsed)"
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    if not parts.hostname:
        return "has no host"
    return None


def _http_url(value: str) -> str:
    problem = http_url_problem(value)
    if problem:
        raise ValueError(f"{problem}; write e.g. https://hooks.example.com/rollout")
    return value


def read_secret_file(path: Path) -> str:
    """A secret file's text, stripped; ValueError (never with the contents) when it cannot
    be read or is empty."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ValueError(
            f"cannot read the file {str(path)!r}: {reason}; give a readable file holding the secret"
        ) from None
    if not text:
        raise ValueError(f"the file {str(path)!r} is empty; put the secret in it")
    return text


def _secret_http_url(value: SecretStr) -> SecretStr:
    _http_url(value.get_secret_value())
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
SecretHttpUrl = Annotated[SecretStr, AfterValidator(_secret_http_url)]


class WebhookConfig(_Model):
    """A generic JSON webhook: POST of the notice as JSON, signed when `secretFile` is set
    (header X-Rollout-Signature: sha256=<HMAC-SHA256 of the body, hex>)."""

    url: HttpUrl
    secret_file: Path | None = None
    events: tuple[NoticeKind, ...] = Field(tuple(NoticeKind), min_length=1)
    timeout: Seconds = Field(5.0, gt=0, le=60)

    @field_validator("secret_file")
    @classmethod
    def _readable(cls, path: Path | None) -> Path | None:
        if path is not None:
            read_secret_file(path)  # refused now, not at the first notice
        return path


class SlackConfig(_Model):
    """A Slack incoming webhook (or anything that takes Slack's message JSON). Its URL is a
    secret: give it in `urlFile`, or inline in `url`."""

    url: SecretHttpUrl | None = None
    url_file: Path | None = None
    events: tuple[NoticeKind, ...] = Field(tuple(NoticeKind), min_length=1)
    timeout: Seconds = Field(5.0, gt=0, le=60)

    @field_validator("url_file")
    @classmethod
    def _readable_url(cls, path: Path | None) -> Path | None:
        if path is not None:
            problem = http_url_problem(read_secret_file(path))
            if problem:
                raise ValueError(f"the file {str(path)!r} does not hold a webhook URL: {problem}")
        return path

    @model_validator(mode="after")
    def _one_url(self) -> SlackConfig:
        if (self.url is None) == (self.url_file is None):
            raise ValueError("set url or urlFile (a file holding the webhook URL), one of them")
        return self


class NotificationsConfig(_Model):
    """Where step, promotion, rollback, pause and abort notices go; best effort, never in
    the way of a rollout (sent in the background, retried with backoff)."""

    webhooks: tuple[WebhookConfig, ...] = Field((), max_length=20)
    slack: tuple[SlackConfig, ...] = Field((), max_length=20)
    attempts: int = Field(5, ge=1, le=20, description="tries per notice, with backoff")


class RolloutBody(_Model):
    model: str = Field(pattern=NAME_PATTERN, description="the model_name label value")
    baseline: VersionRef
    candidate: VersionRef
    router: RouterConfig
    prometheus: PrometheusConfig
    policy: str | Policy = Field("default", description="a policy name, a file path, or inline")
    evidence: EvidenceConfig = EvidenceConfig()
    notifications: NotificationsConfig = NotificationsConfig()

    @model_validator(mode="after")
    def _distinct_versions(self) -> RolloutBody:
        if self.baseline.version == self.candidate.version:
            raise ValueError("baseline and candidate must be different versions")
        return self


class RolloutSpec(_Model):
    api_version: Literal["rollout.mlops.dev/v1alpha1"] = API_VERSION
    kind: Literal["ModelRollout"]
    metadata: Metadata
    spec: RolloutBody


PolicyFile.model_rebuild()


# ---------------------------------------------------------------------------- loading


class FieldProblem(BaseModel):
    model_config = ConfigDict(frozen=True)
    path: str
    message: str


class SpecError(Exception):
    """A user file that cannot be used; lists every problem with its field path."""

    def __init__(self, source: str, problems: list[FieldProblem]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} problem(s)"]
        lines += [f"  {p.path}: {p.message}" for p in problems]
        super().__init__("\n".join(lines))


def file_problem(source: str, path: str, message: str) -> SpecError:
    return SpecError(source, [FieldProblem(path=path, message=message)])


class _NoAliasLoader(yaml.SafeLoader):
    """Refuses anchors and aliases: they are what makes a 'billion laughs' YAML bomb."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            line = event.start_mark.line + 1
            raise file_problem(
                self.name,
                f"line {line}",
                "YAML anchors and aliases are not accepted; write the values out",
            )
        return super().compose_node(parent, index)


def read_yaml(path: Path) -> Any:
    source = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise file_problem(source, "(file)", f"cannot read: {exc.strerror}") from None
    if size > MAX_FILE_BYTES:
        raise file_problem(source, "(file)", f"{size} bytes: over the {MAX_FILE_BYTES} limit")
    try:
        text = path.read_text(encoding="utf-8")
        return parse_yaml(text, source)
    except UnicodeDecodeError:
        raise file_problem(source, "(file)", "not UTF-8 text") from None


def parse_yaml(text: str, source: str) -> Any:
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise file_problem(source, "(file)", f"over the {MAX_FILE_BYTES} byte limit")
    loader = _NoAliasLoader(text)
    loader.name = source
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        problem = getattr(exc, "problem", None) or str(exc)
        raise file_problem(source, where, f"invalid YAML: {problem}") from None
    finally:
        loader.dispose()


# A fix for the fields users get wrong most, keyed by the field's name.
_HINTS = {
    "weight": "the candidate's percent of traffic in this step, 0-99 (then 100 on promotion)",
    "hold": "how long to hold the step, e.g. '2m'",
    "alpha": "the false-rollback rate over the whole rollout, between 0 and 1, e.g. 0.01",
    "quantile": "the latency quantile to compare, e.g. 0.95",
    "minRequests": "requests per version before a step may pass, at least 1",
    "version": "the model_version label value: letters, digits and . _ + : / - only",
    "prometheus.url": "the Prometheus base URL, e.g. http://prometheus:9090",
}


def _problems(exc: ValidationError) -> list[FieldProblem]:
    problems = []
    errors = exc.errors(include_url=False)
    located = [[str(p) for p in err["loc"] if p not in _UNION_TAGS] for err in errors]
    for err, loc in zip(errors, located, strict=True):
        # A too-short list whose items failed is noise: the items' problems say it.
        if err["type"] == "too_short" and any(
            other[: len(loc)] == loc and other != loc for other in located
        ):
            continue
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field: remove it or check its spelling (keys are camelCase)"
        elif hint := _HINTS.get(".".join(loc[-2:])) or _HINTS.get(loc[-1] if loc else ""):
            message = f"{message}; expected {hint}"
        problems.append(FieldProblem(path=".".join(loc) or "(document)", message=message))
    return problems


_UNION_TAGS = (*union_tags(), "sequential", "kayenta")


def policy_from_data(data: Any, source: str) -> Policy:
    """Accept a `RolloutPolicy` document or a bare policy mapping."""
    try:
        if isinstance(data, dict) and "kind" in data and "spec" in data:
            return PolicyFile.model_validate(data).spec
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise SpecError(source, _problems(exc)) from None


def policy_path(name_or_path: str, relative_to: Path | None = None) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if not candidate.is_absolute() and relative_to is not None:
            candidate = relative_to / candidate
        return candidate
    for folder in (POLICY_DIR, PACKAGED_POLICY_DIR):
        found = folder / f"{name_or_path}.yaml"
        if found.is_file():
            return found
    known = sorted(p.stem for p in POLICY_DIR.glob("*.yaml")) if POLICY_DIR.is_dir() else []
    raise file_problem(name_or_path, "policy", f"no policy named {name_or_path!r}; known: {known}")


def load_policy(name_or_path: str, relative_to: Path | None = None) -> Policy:
    path = policy_path(name_or_path, relative_to)
    return policy_from_data(read_yaml(path), str(path))


def spec_from_data(data: Any, source: str) -> RolloutSpec:
    """A ModelRollout document already parsed (a file's YAML, a resource read from the API)."""
    try:
        return RolloutSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(source, _problems(exc)) from None


def load_spec(path: Path) -> tuple[RolloutSpec, Policy]:
    """Read a ModelRollout file and the policy it names; raise SpecError on any problem."""
    spec = spec_from_data(read_yaml(path), str(path))
    policy = spec.spec.policy
    if isinstance(policy, str):
        policy = load_policy(policy, relative_to=path.parent)
    check_router(spec, policy, str(path))
    return spec, policy


def check_router(spec: RolloutSpec, policy: Policy, source: str) -> None:
    """SpecError when the router cannot carry out the policy's steps (k8s-service: 0/100)."""
    steps = tuple(step.weight for step in policy.steps)
    problems = spec.spec.router.policy_problems(steps)
    if problems:
        raise SpecError(
            source, [FieldProblem(path="spec.policy.steps", message=m) for m in problems]
        )
