"""The `rollout` command: parses, builds objects, hands over to the driver, the gate or the demo.

Every usage error (a missing or misspelt option, a bad value, an unknown command) exits 3,
as bad input does, never click's default 2, which means "paused / inconclusive" here:
`RolloutGroup.main` catches click's usage errors for every command.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Sequence
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup

from rollout.exit_codes import ExitCode
from rollout.telemetry import LogFormat

try:  # typer 0.2x carries its own copy of click; older typer uses click itself
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as click_errors  # type: ignore[no-redef]
from rollout.spec import Policy, RolloutSpec, SpecError, load_policy, load_spec, read_yaml

if TYPE_CHECKING:
    from rollout.alerts import AlertWebhook

INTERRUPTED_GATE = 130  # Ctrl-C during a gate: no answer (the shell's convention for SIGINT)


def _version() -> str:
    try:
        return metadata.version("model-rollout")
    except metadata.PackageNotFoundError:  # a source tree that is not installed
        return "unknown"


def _usage_hint(exc: click_errors.UsageError) -> str:
    """What to do about a usage error, beyond click's own message."""
    ctx = exc.ctx
    if isinstance(exc, click_errors.MissingParameter) and exc.param is not None:
        param: Any = exc.param
        help_text = getattr(param, "help", None)
        about = f" ({help_text})" if help_text else ""
        opts = getattr(param, "opts", None) or []
        metavar = param.metavar or param.name.upper()
        if getattr(param, "param_type_name", "") == "option" and opts:
            return f" Add {opts[0]} {metavar}{about}."
        return f" Give {metavar}{about}."
    if isinstance(exc, click_errors.NoSuchOption) and not exc.possibilities:
        return " See the command's options with --help."
    message = exc.format_message()
    if message.startswith("No such command") and "Did you mean" not in message:
        group: Any = ctx.command if ctx is not None else None
        if group is not None and hasattr(group, "list_commands"):
            return f" Commands: {', '.join(group.list_commands(ctx))}."
    return ""


def show_usage_error(exc: click_errors.UsageError) -> None:
    """The usage line, the error with its fix, and where to find help; on stderr."""
    ctx = exc.ctx
    if isinstance(exc, click_errors.NoArgsIsHelpError):
        typer.echo(exc.format_message(), err=True)  # the help itself
        typer.echo(f"(no command given: exit {int(ExitCode.BAD_INPUT)})", err=True)
        return
    lines = []
    if ctx is not None:
        lines.append(ctx.get_usage())
    message = exc.format_message().replace("Value error, ", "")  # pydantic's prefix
    lines.append(f"error: {message}{_usage_hint(exc)}")
    command = ctx.command_path if ctx is not None else "rollout"
    lines.append(f"Try '{command} --help' for help. (usage error: exit {int(ExitCode.BAD_INPUT)})")
    typer.echo("\n".join(lines), err=True)


class RolloutGroup(TyperGroup):
    """The top-level group: click's usage errors exit 3 (bad input) instead of 2."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(
                args,
                prog_name,
                complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        except click_errors.UsageError as exc:
            show_usage_error(exc)
            return _leave(int(ExitCode.BAD_INPUT), standalone_mode)
        except click_errors.ClickException as exc:
            exc.show()
            return _leave(exc.exit_code, standalone_mode)
        except typer.Abort:  # EOF on a prompt, or Ctrl-C inside click itself
            typer.echo("interrupted", err=True)
            return _leave(INTERRUPTED_GATE, standalone_mode)
        except Exception as exc:  # a bug must not read as "regression confirmed" (exit 1)
            traceback.print_exc(file=sys.stderr)
            typer.echo(
                f"internal error ({type(exc).__name__}): this is a bug in rollout, not a verdict "
                "on the candidate; no traffic was changed by this error (exit 4)",
                err=True,
            )
            return _leave(int(ExitCode.INFRASTRUCTURE), standalone_mode)
        code = result if isinstance(result, int) else 0
        return _leave(code, standalone_mode) if standalone_mode else result


class RolloutCommand(TyperCommand):
    """A command whose usage line reads `rollout run [OPTIONS] SPEC`, not `{SPEC}`."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = super().collect_usage_pieces(ctx)
        return [piece.replace("{", "").replace("}", "") for piece in pieces]


def _leave(code: int, standalone_mode: bool) -> int:
    if standalone_mode:
        sys.exit(code)
    return code


app = typer.Typer(
    name="rollout",
    cls=RolloutGroup,
    help="Blue/green rollouts of ML model APIs with statistically confirmed, evidenced rollback.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _subcommands(name: str, help_text: str) -> typer.Typer:
    """A group of commands under `rollout NAME`, with the top level's help conventions."""
    group = typer.Typer(
        help=help_text,
        no_args_is_help=True,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.add_typer(group, name=name)
    return group


policy_app = _subcommands("policy", "Work with policy files.")
sandbox_app = _subcommands(
    "sandbox", "A local stack left running to try run, gate and abort on: up, status, down."
)

console = Console(soft_wrap=True)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"rollout {_version()}")
        raise typer.Exit(0)


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Blue/green rollouts of ML model APIs with statistically confirmed, evidenced rollback.

    Exit codes of run and demo: 0 promoted, 1 rolled back, 2 paused or interrupted
    (nothing decided), 3 bad input or usage (nothing was changed), 4 infrastructure.
    """


def _load_spec(spec: Path) -> tuple[RolloutSpec, Policy]:
    """The ModelRollout file and its policy; bad input exits 3 before anything is touched."""
    try:
        return load_spec(spec)
    except SpecError as exc:
        raise _bad_input(exc) from None


def _bad_input(exc: SpecError) -> typer.Exit:
    typer.echo(f"invalid input: {exc}", err=True)
    return typer.Exit(int(ExitCode.BAD_INPUT))


@policy_app.command("validate", cls=RolloutCommand)
def policy_validate(
    files: Annotated[
        list[Path], typer.Argument(metavar="FILE", help="policy or ModelRollout files")
    ],
) -> None:
    """Check policy (or ModelRollout) files; print every problem with its field path.

    Exit codes: 0 all valid, 3 a problem in any of them.
    """
    failed = False
    for path in files:
        try:
            data = read_yaml(path)
            if isinstance(data, dict) and data.get("kind") == "ModelRollout":
                load_spec(path)
            else:
                load_policy(str(path) if path.suffix else f"./{path}")
        except SpecError as exc:
            failed = True
            typer.echo(str(exc), err=True)
            continue
        console.print(f"{path}: valid", markup=False, highlight=False)
    if failed:
        raise typer.Exit(int(ExitCode.BAD_INPUT))


REPORT_DIR_HELP = (
    "where report.json, report.md and report.html go; default: none written, the summary is "
    "printed only"
)


AlertWebhookPort = Annotated[
    int | None,
    typer.Option(
        min=1,
        max=65535,
        metavar="PORT",
        help="receive Alertmanager's webhook on this port: a firing alert whose labels name a "
        "rollout's model and candidate pauses or rolls back that rollout (the policy's "
        "alerts.action); off by default",
    ),
]
AlertWebhookAddress = Annotated[
    str, typer.Option(metavar="ADDRESS", help="the address the alert webhook listens on")
]
AlertWebhookTokenFile = Annotated[
    Path | None,
    typer.Option(
        metavar="FILE",
        help="the alert webhook's secret: requests carry it as a bearer token, or sign "
        "their body with it (X-Signature: sha256=HMAC); required with --alert-webhook-port",
    ),
]


@app.command("run", cls=RolloutCommand)
def run(
    spec: Annotated[Path, typer.Argument(metavar="SPEC", help="a ModelRollout YAML file")],
    state_dir: Annotated[
        Path,
        typer.Option(
            metavar="DIR", help="where the rollout's state is kept (resumed from on restart)"
        ),
    ] = Path(".rollout"),
    report_dir: Annotated[Path | None, typer.Option(metavar="DIR", help=REPORT_DIR_HELP)] = None,
    alert_webhook_port: AlertWebhookPort = None,
    alert_webhook_address: AlertWebhookAddress = "127.0.0.1",
    alert_webhook_token_file: AlertWebhookTokenFile = None,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format",
            help="json: one JSON log line per look, step and decision on stdout (the summary "
            "goes to stderr); text: the console",
        ),
    ] = LogFormat.TEXT,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, metavar="PORT", help="serve Prometheus metrics on /metrics; off"
        ),
    ] = None,
    metrics_address: Annotated[
        str, typer.Option(metavar="ADDRESS", help="the address --metrics-port listens on")
    ] = "127.0.0.1",
) -> None:
    """Run a rollout against your Prometheus and router; resumes where a crash left it.

    Spans go over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set. Exit codes: 0 promoted,
    1 rolled back, 2 paused, or interrupted (Ctrl-C or SIGTERM: traffic stays, the same
    command resumes), 3 bad spec, policy or usage (or the metrics port is taken),
    4 infrastructure.
    """
    from rollout.driver import run_from_spec
    from rollout.telemetry.setup import running_telemetry

    webhook = _alert_webhook(alert_webhook_port, alert_webhook_address, alert_webhook_token_file)
    rollout_spec, policy = _load_spec(spec)
    out = console if log_format is LogFormat.TEXT else Console(soft_wrap=True, stderr=True)
    with contextlib.ExitStack() as stack:
        try:
            observers = stack.enter_context(
                running_telemetry(
                    log_format=log_format,
                    log_stream=sys.stdout if log_format is LogFormat.JSON else sys.stderr,
                    metrics_port=metrics_port,
                    metrics_address=metrics_address,
                )
            )
        except OSError as exc:
            typer.echo(
                f"invalid input: cannot serve metrics on {metrics_address}:{metrics_port}: "
                f"{exc.strerror or exc}; choose another --metrics-port",
                err=True,
            )
            raise typer.Exit(int(ExitCode.BAD_INPUT)) from None
        code = run_from_spec(
            rollout_spec,
            policy,
            state_dir=state_dir,
            report_dir=report_dir,
            console=out,
            observers=observers,
            alert_webhook=webhook,
        )
    raise typer.Exit(int(code))


def _alert_webhook(port: int | None, address: str, token_file: Path | None) -> AlertWebhook | None:
    """The alert webhook's settings; never one without a secret (exit 3 naming the flag)."""
    from rollout.alerts import AlertWebhook, SecretFileError, read_secret

    if port is None:
        if token_file is not None:
            typer.echo(
                "error: --alert-webhook-token-file is used only with --alert-webhook-port PORT "
                "(the port the webhook listens on); add it or drop the token file",
                err=True,
            )
            raise typer.Exit(int(ExitCode.BAD_INPUT))
        return None
    if token_file is None:
        typer.echo(
            "error: --alert-webhook-port needs --alert-webhook-token-file FILE (the secret "
            "Alertmanager sends as a bearer token): the webhook never listens unauthenticated",
            err=True,
        )
        raise typer.Exit(int(ExitCode.BAD_INPUT))
    try:
        return AlertWebhook(port=port, secret=read_secret(token_file), address=address)
    except SecretFileError as exc:
        typer.echo(f"error: --alert-webhook-token-file {exc}", err=True)
        raise typer.Exit(int(ExitCode.BAD_INPUT)) from None


KubeconfigOption = Annotated[
    Path | None,
    typer.Option(
        metavar="FILE",
        help="kubeconfig to use; default: $KUBECONFIG, ~/.kube/config, else in-cluster",
    ),
]


NamespaceOption = Annotated[
    str | None,
    typer.Option(
        "--namespace", "-n", metavar="NS", help="a ModelRollout resource in NS (see --cluster)"
    ),
]
ContextOption = Annotated[str | None, typer.Option(metavar="NAME", help="kubeconfig context")]
ClusterFlag = Annotated[
    bool,
    typer.Option(
        "--cluster",
        help="act on the ModelRollout resource NAME through the controller (implied by "
        "-n, --kubeconfig, --context); without: the local state of `rollout run`",
    ),
]


def _cluster(
    cluster: bool, namespace: str | None, kubeconfig: Path | None, context: str | None
) -> Any:
    """The cluster to act on (a `rollout.k8s.verbs.Cluster`), or None: act locally."""
    if not (cluster or namespace or kubeconfig or context):
        return None
    from rollout.k8s.verbs import Cluster

    return Cluster(kubeconfig=kubeconfig, context=context, namespace=namespace)


def _on_cluster(
    where: Any, name: str, action: Literal["promote", "abort", "retry"], reason: str, full: bool
) -> None:
    """A request to the controller on the ModelRollout `name`; exits with its answer."""
    from rollout.k8s import verbs

    code = verbs.request(where, name, action, reason=reason, full=full, console=console)
    raise typer.Exit(int(code))


@app.command("abort", cls=RolloutCommand)
def abort(
    spec: Annotated[
        Path,
        typer.Argument(
            metavar="SPEC",
            help="the ModelRollout YAML file it was started with; on a cluster, its name",
        ),
    ],
    reason: Annotated[str, typer.Option(metavar="TEXT", help="why, for the report")] = (
        "aborted by a person"
    ),
    state_dir: Annotated[
        Path, typer.Option(metavar="DIR", help="where the rollout's state is kept")
    ] = Path(".rollout"),
    report_dir: Annotated[Path | None, typer.Option(metavar="DIR", help=REPORT_DIR_HELP)] = None,
    cluster: ClusterFlag = False,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Abort a rollout: all traffic back to the baseline, then the report.

    A paused or stopped rollout is aborted here; one a `rollout run` drives is aborted by that
    run, asked through a command file beside the state (it takes it between its steps).
    Exit codes: 0 all traffic confirmed on the baseline, 3 nothing to abort (no saved rollout,
    already promoted, rolled back or aborted), the run did not take the command within 30 s,
    or a usage error, 4 infrastructure or the weights not confirmed in time. On a cluster (SPEC
    is the ModelRollout's name): 0 the controller accepted it, 3 refused or no such rollout, 4
    no controller answered.
    """
    where = _cluster(cluster, namespace, kubeconfig, context)
    if where is not None:
        _on_cluster(where, str(spec), "abort", reason, False)
    from rollout.driver import abort_from_spec

    rollout_spec, policy = _load_spec(spec)
    code = abort_from_spec(
        rollout_spec,
        policy,
        reason=reason,
        state_dir=state_dir,
        report_dir=report_dir,
        console=console,
    )
    raise typer.Exit(int(code))


StateDir = Annotated[Path, typer.Option(metavar="DIR", help="where the rollouts' state is kept")]
SpecArg = Annotated[
    Path,
    typer.Argument(
        metavar="SPEC",
        help="the ModelRollout YAML file it was started with; on a cluster, its name",
    ),
]


@app.command("promote", cls=RolloutCommand)
def promote(
    spec: SpecArg,
    full: Annotated[
        bool, typer.Option("--full", help="all traffic to the candidate now, not the next step")
    ] = False,
    reason: Annotated[str, typer.Option(metavar="TEXT", help="why, for the report")] = (
        "promoted by a person"
    ),
    state_dir: StateDir = Path(".rollout"),
    report_dir: Annotated[Path | None, typer.Option(metavar="DIR", help=REPORT_DIR_HELP)] = None,
    cluster: ClusterFlag = False,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Skip the rest of the analysis: the next step now, or with --full all traffic to the
    candidate now; confirmed by the router's read-back and recorded in the report.

    For a progressing or paused rollout. One a `rollout run` drives is promoted by that run,
    asked through a command file beside the state, and the run goes on; else, without --full,
    `rollout run SPEC` goes on with the analysis at the new step. Exit codes: 0 the new
    weights confirmed, 1 the router failed past the policy's limit and the rollout rolled
    back, 2 interrupted, 3 nothing to promote (no saved rollout, already promoted, rolled back
    or aborted), the run did not take the command within 30 s, or a usage error, 4
    infrastructure or the weights not confirmed in time. On a cluster (SPEC is the
    ModelRollout's name): 0 the controller accepted it, 3 refused, 4 no controller answered.
    """
    where = _cluster(cluster, namespace, kubeconfig, context)
    if where is not None:
        _on_cluster(where, str(spec), "promote", reason, full)
    from rollout.driver import promote_from_spec

    rollout_spec, policy = _load_spec(spec)
    code = promote_from_spec(
        rollout_spec,
        policy,
        full=full,
        reason=reason,
        state_dir=state_dir,
        report_dir=report_dir,
        console=console,
    )
    raise typer.Exit(int(code))


@app.command("retry", cls=RolloutCommand)
def retry(
    spec: SpecArg,
    reason: Annotated[str, typer.Option(metavar="TEXT", help="why, for the report")] = (
        "retried by a person"
    ),
    state_dir: StateDir = Path(".rollout"),
    report_dir: Annotated[Path | None, typer.Option(metavar="DIR", help=REPORT_DIR_HELP)] = None,
    cluster: ClusterFlag = False,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Start a rolled-back, paused or aborted rollout again from step 1 and run it to its
    decision; the earlier attempt's state is archived (`rollout list` shows it).

    Exit codes as for `run`: 0 promoted, 1 rolled back, 2 paused or interrupted, 3 nothing to
    retry (no saved rollout, promoted, or still progressing) or a `rollout run` of it is still
    running, or a usage error, 4 infrastructure. On a cluster (SPEC is the ModelRollout's
    name): 0 the controller accepted it, 3 refused, 4 no controller answered.
    """
    where = _cluster(cluster, namespace, kubeconfig, context)
    if where is not None:
        _on_cluster(where, str(spec), "retry", reason, False)
    from rollout.driver import retry_from_spec

    rollout_spec, policy = _load_spec(spec)
    code = retry_from_spec(
        rollout_spec,
        policy,
        reason=reason,
        state_dir=state_dir,
        report_dir=report_dir,
        console=console,
    )
    raise typer.Exit(int(code))


@app.command("status", cls=RolloutCommand)
def status(
    name: Annotated[
        str | None,
        typer.Argument(metavar="NAME", help="the rollout's name; default: the only one in DIR"),
    ] = None,
    state_dir: StateDir = Path(".rollout"),
    watch: Annotated[bool, typer.Option("--watch", help="print each change while waiting")] = (
        False
    ),
    timeout: Annotated[
        float,
        typer.Option(min=0, metavar="SECONDS", help="stop waiting after this long; 0: no limit"),
    ] = 0.0,
    cluster: ClusterFlag = False,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """A rollout's phase, step, weights, latest numbers and what happens next; waits while a
    `rollout run` drives it, as `kubectl argo rollouts status` does (--watch prints each change).

    Exit codes: 0 promoted, 1 rolled back or aborted, 2 paused, or progressing with no
    `rollout run` driving it, 3 no such rollout or a usage error, 4 still progressing when
    --timeout ran out.
    """
    where = _cluster(cluster, namespace, kubeconfig, context)
    if where is not None:
        from rollout.k8s import verbs

        if name is None:
            typer.echo("error: name the ModelRollout (rollout status NAME -n NS)", err=True)
            raise typer.Exit(int(ExitCode.BAD_INPUT))
        code = verbs.status(where, name, watch=watch, timeout=timeout, console=console)
        raise typer.Exit(int(code))
    from rollout.lifecycle import status as show

    raise typer.Exit(int(show(state_dir, name, watch=watch, timeout=timeout, console=console)))


@app.command("list", cls=RolloutCommand)
def list_command(
    state_dir: StateDir = Path(".rollout"),
    cluster: ClusterFlag = False,
    namespace: NamespaceOption = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="ModelRollouts of every namespace")
    ] = False,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Current and past (archived) rollouts: outcome, when, the report and the state file.

    On a cluster: the ModelRollouts with their phase, versions, step and weights.
    Exit codes: 0 listed (also when there are none), 3 a usage error, 4 the API failed.
    """
    where = _cluster(cluster or all_namespaces, namespace, kubeconfig, context)
    if where is not None:
        from rollout.k8s import verbs

        raise typer.Exit(int(verbs.list_rollouts(where, all_namespaces, console)))
    from rollout.lifecycle import list_rollouts

    raise typer.Exit(int(list_rollouts(state_dir, console)))


@app.command("crd", cls=RolloutCommand)
def crd() -> None:
    """Print the ModelRollout CustomResourceDefinition (YAML), generated from the spec's models.

    `rollout crd | kubectl apply -f -` installs it; manifests/crd.yaml is this output.
    Exit codes: 0 printed, 3 a usage error.
    """
    from rollout.k8s.crd import crd_yaml

    typer.echo(crd_yaml(), nl=False)


@app.command("controller", cls=RolloutCommand)
def controller(
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", "-n", metavar="NS", help="watch ModelRollouts in NS only"),
    ] = None,
    all_namespaces: Annotated[
        bool,
        typer.Option("--all-namespaces", "-A", help="watch every namespace (the default)"),
    ] = False,
    kubeconfig: KubeconfigOption = None,
    context: Annotated[str | None, typer.Option(metavar="NAME", help="kubeconfig context")] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, metavar="N", help="rollouts reconciled at once")
    ] = 4,
    resync: Annotated[
        float,
        typer.Option(min=1, metavar="SECONDS", help="every rollout is looked at again this often"),
    ] = 300.0,
    health_address: Annotated[
        str,
        typer.Option(
            metavar="HOST:PORT",
            help="serve /healthz and /readyz here (':8081': every interface); '' for none",
        ),
    ] = ":8081",
    leader_elect: Annotated[
        bool,
        typer.Option(
            "--leader-elect/--no-leader-elect",
            help="act only while holding the Lease (for several replicas)",
        ),
    ] = True,
    lease_name: Annotated[str, typer.Option(metavar="NAME", help="the Lease's name")] = (
        "rollout-controller"
    ),
    lease_namespace: Annotated[
        str | None,
        typer.Option(metavar="NS", help="the Lease's namespace; default: $POD_NAMESPACE, NS"),
    ] = None,
    lease_duration: Annotated[
        int, typer.Option(min=1, metavar="SECONDS", help="a follower's wait on a silent leader")
    ] = 15,
    renew_deadline: Annotated[
        float,
        typer.Option(metavar="SECONDS", help="a leader that has not renewed this long stops"),
    ] = 10.0,
    retry_period: Annotated[
        float, typer.Option(metavar="SECONDS", help="between attempts to acquire or renew")
    ] = 2.0,
    identity: Annotated[
        str, typer.Option(metavar="ID", help="this replica's name; default: host-pid-random")
    ] = "",
    alert_webhook_port: AlertWebhookPort = None,
    alert_webhook_address: AlertWebhookAddress = "127.0.0.1",
    alert_webhook_token_file: AlertWebhookTokenFile = None,
    log_format: Annotated[
        LogFormat, typer.Option("--log-format", help="json: one JSON object per log line")
    ] = LogFormat.TEXT,
    metrics_port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, metavar="PORT", help="serve Prometheus metrics on /metrics"),
    ] = None,
    metrics_address: Annotated[
        str, typer.Option(metavar="ADDRESS", help="the address --metrics-port listens on")
    ] = "0.0.0.0",
) -> None:
    """Run the in-cluster controller: drive every ModelRollout resource to its decision.

    State lives in each resource's status (resumed from after a restart); Events say every
    step, promotion, rollback, pause and abort. SIGTERM lets running steps finish, releases
    the Lease and exits 0. Exit codes: 0 stopped, 3 bad options or kubeconfig.
    """
    from rollout.k8s.serve import ServeOptions, serve

    webhook = _alert_webhook(alert_webhook_port, alert_webhook_address, alert_webhook_token_file)
    if namespace is not None and all_namespaces:
        typer.echo("error: give --namespace NS or --all-namespaces, not both", err=True)
        raise typer.Exit(int(ExitCode.BAD_INPUT))
    options = ServeOptions(
        namespace=namespace,
        kubeconfig=kubeconfig,
        context=context,
        workers=workers,
        resync_seconds=resync,
        health_address=health_address,
        leader_elect=leader_elect,
        lease_name=lease_name,
        lease_namespace=lease_namespace,
        lease_duration=lease_duration,
        renew_deadline=renew_deadline,
        retry_period=retry_period,
        identity=identity,
        alert_webhook=webhook,
        log_format=log_format,
        metrics_port=metrics_port,
        metrics_address=metrics_address,
    )
    raise typer.Exit(int(serve(options)))


class Scenario(StrEnum):
    HEALTHY = "healthy"
    LATENCY = "latency"
    ERRORS = "errors"


@app.command("demo", cls=RolloutCommand)
def demo(
    scenario: Annotated[Scenario, typer.Option(help="what v2 does")] = Scenario.LATENCY,
    rps: Annotated[
        float, typer.Option(min=1, max=2000, metavar="N", help="requests per second")
    ] = 60.0,
    report_dir: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="where reports go; default: reports/demo-SCENARIO"),
    ] = None,
) -> None:
    """Start a local stack (Prometheus, HAProxy, v1 and v2 model servers, load) and roll out v2.

    `latency` makes v2 twice as slow, `errors` makes it fail 5% of requests, `healthy` leaves it
    as fast as v1. Exit codes as for `run`. Every process it starts is stopped on exit.
    """
    from rollout.demo.launcher import run_demo

    code = run_demo(scenario.value, rps=rps, report_dir=report_dir, console=console)
    raise typer.Exit(int(code))


SANDBOX_DIR_HELP = "the sandbox's folder: its spec, record, logs, state and reports"
DEFAULT_SANDBOX_DIR = Path(".rollout-sandbox")
SandboxDir = Annotated[Path, typer.Option("--dir", metavar="DIR", help=SANDBOX_DIR_HELP)]


@sandbox_app.command("up", cls=RolloutCommand)
def sandbox_up(
    scenario: Annotated[Scenario, typer.Option(help="what v2 does")] = Scenario.LATENCY,
    directory: SandboxDir = DEFAULT_SANDBOX_DIR,
    rps: Annotated[
        float, typer.Option(min=1, max=2000, metavar="N", help="requests per second")
    ] = 60.0,
) -> None:
    """Start the demo's stack and leave it running; print DIR/rollout.yaml and what to try.

    Prometheus, HAProxy (all traffic on v1), the v1 and v2 model servers and load keep running
    after this command; `rollout sandbox down` stops them. Exit codes: 0 up and ready, 2
    interrupted (everything started is stopped), 3 a sandbox is already up in DIR, or a usage
    error, 4 a part could not start (everything started is stopped).
    """
    from rollout.demo.sandbox import sandbox_up as up

    raise typer.Exit(int(up(directory, scenario.value, rps, console)))


@sandbox_app.command("status", cls=RolloutCommand)
def sandbox_status(
    directory: SandboxDir = DEFAULT_SANDBOX_DIR,
) -> None:
    """Which of the sandbox's processes run, their addresses, and HAProxy's weights.

    Exit codes: 0 every part running, 3 no sandbox in DIR, 4 a part has stopped.
    """
    from rollout.demo.sandbox import sandbox_status as status

    raise typer.Exit(int(status(directory, console)))


@sandbox_app.command("down", cls=RolloutCommand)
def sandbox_down(
    directory: SandboxDir = DEFAULT_SANDBOX_DIR,
) -> None:
    """Stop the sandbox's processes (by the pids `up` recorded, only if still the same ones).

    Logs and reports stay in DIR. Exit codes: 0 stopped, or nothing was running, 3 usage,
    4 a process would not exit.
    """
    from rollout.demo.sandbox import sandbox_down as down

    raise typer.Exit(int(down(directory, console)))


class GateFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    JUNIT = "junit"
    MARKDOWN = "markdown"


@app.command("gate", cls=RolloutCommand)
def gate(
    prometheus_url: Annotated[str, typer.Option(metavar="URL", help="Prometheus base URL")],
    model: Annotated[str, typer.Option(metavar="NAME", help="model_name label value")],
    baseline: Annotated[str, typer.Option(metavar="VERSION", help="baseline model_version")],
    candidate: Annotated[str, typer.Option(metavar="VERSION", help="candidate model_version")],
    policy: Annotated[
        str, typer.Option(metavar="NAME|FILE", help="policy name or file")
    ] = "default",
    window: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="window ending now (or at --end), with a unit, e.g. 15m; default 15m",
        ),
    ] = None,
    start: Annotated[
        str | None, typer.Option(metavar="TIME", help="RFC 3339 or unix seconds")
    ] = None,
    end: Annotated[str | None, typer.Option(metavar="TIME", help="RFC 3339 or unix seconds")] = (
        None
    ),
    report_dir: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="writes report.json, report.md, junit.xml and report.html; default: none written",
        ),
    ] = None,
    output_format: Annotated[
        GateFormat, typer.Option("--format", help="what goes to stdout")
    ] = GateFormat.TEXT,
    bearer_token_file: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="file holding a bearer token for Prometheus"),
    ] = None,
) -> None:
    """CI deployment gate: may this model version go on? Judges a window; moves no traffic.

    Exit codes: 0 pass, 1 fail, 2 inconclusive, 3 usage or configuration, 4 metrics source,
    130 interrupted (Ctrl-C).
    """
    from rollout.gate import GateRequest, run_gate

    code = run_gate(
        GateRequest(
            prometheus_url=prometheus_url,
            model=model,
            baseline=baseline,
            candidate=candidate,
            policy=policy,
            window=window,
            start=start,
            end=end,
            report_dir=report_dir,
            output_format=output_format.value,
            bearer_token_file=bearer_token_file,
        ),
        console=console,
    )
    raise typer.Exit(int(code))


if __name__ == "__main__":
    app()
