"""The controller image's Dockerfile, read as Docker reads it (no Docker engine runs here): a
multi-stage build whose final stage installs the wheel the build stage makes, has no build
tools, runs as a numeric non-root user and starts `rollout controller`. The build stage's own
commands are run on a copy of its build context to show the wheel it makes is complete."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make", "python3-dev", "libc6-dev", "hatchling")


@dataclass
class Stage:
    image: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, instruction: str) -> list[str]:
        return [a for i, a in self.instructions if i == instruction]


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments and blanks dropped."""
    found, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        words = (pending + stripped).split(None, 1)
        found.append((words[0].upper(), words[1] if len(words) > 1 else ""))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return found


def stages(text: str) -> list[Stage]:
    parsed: list[Stage] = []
    for instruction, args in instructions(text):
        if instruction == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].lower() == "as" else str(len(parsed))
            parsed.append(Stage(image=words[0], name=name))
        else:
            assert parsed, f"{instruction} before the first FROM"
            parsed[-1].instructions.append((instruction, args))
    return parsed


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern decides; a pattern matching a folder matches
    what is inside it; `**/` matches any number of folders, none included."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for raw in patterns:
        negated = raw.startswith("!")
        pattern = raw.removeprefix("!").rstrip("/")
        variants = {pattern, pattern.removeprefix("**/")}
        if any(fnmatch.fnmatchcase(p, v) for p in prefixes for v in variants):
            excluded = not negated
    return excluded


@pytest.fixture(scope="module")
def dockerfile() -> list[Stage]:
    return stages((ROOT / "Dockerfile").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def ignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def final(stages_: list[Stage]) -> Stage:
    return stages_[-1]


def referenced_stage(stages_: list[Stage]) -> Stage:
    """The earlier stage the final one takes its files from (COPY --from= or --mount from=)."""
    names = {
        match
        for args in final(stages_).args("COPY") + final(stages_).args("RUN")
        for match in re.findall(r"from=([\w.-]+)", args)
    }
    assert len(names) == 1, f"the final stage should use one build stage, uses {names}"
    [name] = names
    [stage] = [s for s in stages_[:-1] if s.name == name]
    return stage


def test_a_multi_stage_build_on_the_slim_python_base(dockerfile: list[Stage]) -> None:
    assert len(dockerfile) >= 2
    assert {s.image for s in dockerfile} == {"python:3.11-slim"}
    build = referenced_stage(dockerfile)
    assert any(re.search(r"\bpip wheel\b|\bpython -m build\b", run) for run in build.args("RUN"))


def test_the_final_stage_installs_the_wheel_and_has_no_build_tools(
    dockerfile: list[Stage],
) -> None:
    runs = final(dockerfile).args("RUN")
    assert any(re.search(r"pip install\b.*\.whl", run) for run in runs), runs
    for run in runs:
        for tool in BUILD_TOOLS:
            assert not re.search(rf"(?<![\w-]){re.escape(tool)}(?![\w-])", run), (tool, run)
    # Nothing of the build stage's tree but the wheel reaches the final image.
    for copy in final(dockerfile).args("COPY"):
        assert "--from=" not in copy or ".whl" in copy, copy


def test_the_final_stage_runs_as_the_deployments_numeric_non_root_user(
    dockerfile: list[Stage],
) -> None:
    users = final(dockerfile).args("USER")
    assert users, "the final stage sets no USER: it would run as root"
    match = re.fullmatch(r"(\d+)(?::(\d+))?", users[-1].strip())
    assert match, f"USER {users[-1]} is not numeric: the kubelet cannot verify runAsNonRoot"
    assert int(match[1]) != 0 and (match[2] is None or int(match[2]) != 0)
    deployment = yaml.safe_load((ROOT / "manifests" / "deployment.yaml").read_text())
    pod_security = deployment["spec"]["template"]["spec"]["securityContext"]
    assert pod_security["runAsUser"] == int(match[1])


def test_the_entrypoint_is_the_controller(dockerfile: list[Stage]) -> None:
    [entrypoint] = final(dockerfile).args("ENTRYPOINT")
    assert json.loads(entrypoint) == ["rollout", "controller"]  # exec form: signals reach it
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["rollout"] == "rollout.cli:app"
    exposed = {int(p) for args in final(dockerfile).args("EXPOSE") for p in args.split()}
    deployment = yaml.safe_load((ROOT / "manifests" / "deployment.yaml").read_text())
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert exposed == {p["containerPort"] for p in container["ports"]}


def test_the_build_context_holds_what_the_build_copies_and_nothing_private(
    dockerfile: list[Stage], ignore_patterns: list[str]
) -> None:
    for copy in referenced_stage(dockerfile).args("COPY"):
        *sources, _ = copy.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not dockerignored(source.rstrip("/"), ignore_patterns), source
    assert not dockerignored("rollout/k8s/serve.py", ignore_patterns)
    assert not dockerignored("policies/default.yaml", ignore_patterns)
    for private in (".git/config", ".venv/bin/python", "tests/conftest.py", ".rollout/state.json"):
        assert dockerignored(private, ignore_patterns), private
    assert dockerignored("rollout/__pycache__/cli.cpython-311.pyc", ignore_patterns)


@pytest.mark.slow
def test_the_build_stage_makes_a_complete_wheel(
    dockerfile: list[Stage], ignore_patterns: list[str], tmp_path: Path
) -> None:
    """Run the build stage's COPY and RUN steps on a copy of the context (pip fetches the build
    backend from the package index, as `docker build` would)."""
    build = referenced_stage(dockerfile)
    [workdir] = build.args("WORKDIR")
    context = tmp_path / workdir.strip("/")
    context.mkdir(parents=True)
    for copy in build.args("COPY"):
        *sources, destination = copy.split()
        for source in sources:
            origin = ROOT / source
            files = origin.rglob("*") if origin.is_dir() else [origin]
            for path in files:
                relative = path.relative_to(ROOT).as_posix()
                if path.is_file() and not dockerignored(relative, ignore_patterns):
                    inside = path.relative_to(origin) if origin.is_dir() else Path(path.name)
                    target = context / destination / inside
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for run in build.args("RUN"):
        done = subprocess.run(
            ["sh", "-c", run], cwd=context, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-2000:]
    [wheel] = (context / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "rollout = rollout.cli:app" in archive.read(entry_points).decode()
    assert {"rollout/cli.py", "rollout/k8s/serve.py", "rollout/_policies/default.yaml"} <= names
    assert not any("__pycache__" in n or n.startswith("tests/") for n in names)
