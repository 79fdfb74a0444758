"""The `rollout` command: parses, builds objects, hands over to the driver, the gate or the demo."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from rollout.exit_codes import ExitCode
from rollout.spec import SpecError, load_policy, load_spec, read_yaml

app = typer.Typer(
    name="rollout",
    help="Blue/green rollouts of ML model APIs with statistically confirmed, evidenced rollback.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
policy_app = typer.Typer(help="Work with policy files.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")

console = Console(soft_wrap=True)


def _bad_input(exc: SpecError) -> typer.Exit:
    typer.echo(f"invalid input: {exc}", err=True)
    return typer.Exit(int(ExitCode.BAD_INPUT))


@policy_app.command("validate")
def policy_validate(
    files: Annotated[list[Path], typer.Argument(help="policy or ModelRollout files")],
) -> None:
    """Check policy (or ModelRollout) files; print every problem with its field path."""
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


@app.command("run")
def run(
    spec: Annotated[Path, typer.Argument(help="a ModelRollout YAML file")],
    state_dir: Annotated[
        Path, typer.Option(help="where the rollout's state is kept (resumed from on restart)")
    ] = Path(".rollout"),
    report_dir: Annotated[
        Path | None, typer.Option(help="where report.json and report.md go")
    ] = None,
) -> None:
    """Run a rollout against your Prometheus and router; resumes where a crash left it.

    Exit codes: 0 promoted, 1 rolled back, 2 paused, 3 bad spec or policy, 4 infrastructure.
    """
    from rollout.driver import run_from_spec

    try:
        rollout_spec, policy = load_spec(spec)
    except SpecError as exc:
        raise _bad_input(exc) from None
    code = run_from_spec(
        rollout_spec, policy, state_dir=state_dir, report_dir=report_dir, console=console
    )
    raise typer.Exit(int(code))


@app.command("abort")
def abort(
    spec: Annotated[Path, typer.Argument(help="the ModelRollout YAML file it was started with")],
    reason: Annotated[str, typer.Option(help="why, for the report")] = "aborted by a person",
    state_dir: Annotated[Path, typer.Option(help="where the rollout's state is kept")] = Path(
        ".rollout"
    ),
    report_dir: Annotated[
        Path | None, typer.Option(help="where report.json and report.md go")
    ] = None,
) -> None:
    """Abort a paused or stopped rollout: all traffic back to the baseline, then the report.

    Exit codes: 0 all traffic confirmed on the baseline, 3 nothing to abort (no saved rollout,
    already promoted) or a `rollout run` of it is still running, 4 infrastructure.
    """
    from rollout.driver import abort_from_spec

    try:
        rollout_spec, policy = load_spec(spec)
    except SpecError as exc:
        raise _bad_input(exc) from None
    code = abort_from_spec(
        rollout_spec,
        policy,
        reason=reason,
        state_dir=state_dir,
        report_dir=report_dir,
        console=console,
    )
    raise typer.Exit(int(code))


class Scenario(StrEnum):
    HEALTHY = "healthy"
    LATENCY = "latency"
    ERRORS = "errors"


@app.command("demo")
def demo(
    scenario: Annotated[Scenario, typer.Option(help="what v2 does")] = Scenario.LATENCY,
    rps: Annotated[float, typer.Option(min=1, max=2000, help="requests per second")] = 60.0,
    report_dir: Annotated[Path | None, typer.Option(help="where reports go")] = None,
) -> None:
    """Start a local stack (Prometheus, HAProxy, v1 and v2 model servers, load) and roll out v2.

    `latency` makes v2 40% slower, `errors` makes it fail 5% of requests, `healthy` leaves it
    as fast as v1. Exit codes as for `run`. Every process it starts is stopped on exit.
    """
    from rollout.demo.launcher import run_demo

    code = run_demo(scenario.value, rps=rps, report_dir=report_dir, console=console)
    raise typer.Exit(int(code))


class GateFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    JUNIT = "junit"
    MARKDOWN = "markdown"


@app.command("gate")
def gate(
    prometheus_url: Annotated[str, typer.Option(help="Prometheus base URL")],
    model: Annotated[str, typer.Option(help="model_name label value")],
    baseline: Annotated[str, typer.Option(help="baseline model_version")],
    candidate: Annotated[str, typer.Option(help="candidate model_version")],
    policy: Annotated[str, typer.Option(help="policy name or file")] = "default",
    window: Annotated[
        str | None, typer.Option(help="window ending now, e.g. 15m (or --start/--end)")
    ] = None,
    start: Annotated[str | None, typer.Option(help="RFC 3339 or unix seconds")] = None,
    end: Annotated[str | None, typer.Option(help="RFC 3339 or unix seconds")] = None,
    report_dir: Annotated[
        Path | None, typer.Option(help="writes report.json/.md, junit.xml")
    ] = None,
    output_format: Annotated[GateFormat, typer.Option("--format")] = GateFormat.TEXT,
    bearer_token_file: Annotated[
        Path | None, typer.Option(help="file holding a bearer token for Prometheus")
    ] = None,
) -> None:
    """CI deployment gate: may this model version go on? Judges a window; moves no traffic.

    Exit codes: 0 pass, 1 fail, 2 inconclusive, 3 usage or configuration, 4 metrics source.
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
