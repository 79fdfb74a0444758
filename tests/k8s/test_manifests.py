"""The install manifests (manifests/) and the example: valid objects, least-privilege RBAC, a
hardened controller Deployment whose flags the CLI accepts, and `kubectl apply` of it all."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from kubernetes.client import models

from rollout.cli import app
from rollout.routers.base import ALL_BASELINE
from rollout.routers.gateway_api import HTTP_ROUTE, GatewayApiRouterConfig, HTTPRouteWeights
from rollout.routers.k8s_objects import ObjectRef
from rollout.spec import load_spec
from tests.support.fake_kube import FakeApiServer
from tests.support.fake_kube.kubectl import kubectl

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
EXAMPLES = MANIFESTS / "examples"
SYSTEM_NAMESPACE = "model-rollout-system"
Doc = dict[str, Any]


def documents(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def objects(folder: Path) -> list[Doc]:
    """The Kubernetes objects of a kustomization's resources, in its order."""
    resources = documents(folder / "kustomization.yaml")[0]["resources"]
    return [doc for name in resources for doc in documents(folder / name)]


def one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def model_class(doc: Doc) -> type[Any]:
    """The official client's model of a built-in object (V1Deployment for apps/v1 Deployment)."""
    version = doc["apiVersion"].rsplit("/", 1)[-1]
    found = getattr(models, f"{version.capitalize()}{doc['kind']}", None)
    assert found is not None, f"{doc['apiVersion']} {doc['kind']} is not a built-in kind"
    return found  # type: ignore[no-any-return]


def strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in (key, *strings(item))]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return [value] if isinstance(value, str) else []


@pytest.fixture(scope="module")
def install() -> list[Doc]:
    return objects(MANIFESTS)


@pytest.fixture(scope="module")
def example() -> list[Doc]:
    return objects(EXAMPLES)


# ----------------------------------------------------------------------------- every file


# Applied on their own: a PrometheusRule needs the Prometheus Operator's CRD, which a plain
# `kubectl apply -k manifests` must not require.
OPTIONAL = {"prometheus-rules.yaml"}


def test_every_manifest_parses_and_is_listed_in_its_kustomization() -> None:
    for folder in (MANIFESTS, EXAMPLES):
        listed = set(documents(folder / "kustomization.yaml")[0]["resources"])
        on_disk = {p.name for p in folder.glob("*.yaml")} - {"kustomization.yaml"} - OPTIONAL
        assert listed == on_disk, f"{folder}: listed {sorted(listed)}, files {sorted(on_disk)}"
        for path in folder.glob("*.yaml"):
            for doc in documents(path):
                assert isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind"), path


def test_builtin_objects_are_valid_with_no_unknown_fields(
    install: list[Doc], example: list[Doc]
) -> None:
    builtin = [d for d in install + example if d["kind"] not in ("ModelRollout", "HTTPRoute")]
    assert {d["kind"] for d in builtin} >= {
        "Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole",
        "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service",
    }  # fmt: skip
    for doc in builtin:
        # Pydantic models of the client forbid extra fields: a misspelt key fails here.
        model_class(doc).model_validate(doc)


def test_the_install_lives_in_its_namespace(install: list[Doc]) -> None:
    one(install, "Namespace", SYSTEM_NAMESPACE)
    cluster_scoped = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
    for doc in install:
        expected = None if doc["kind"] in cluster_scoped else SYSTEM_NAMESPACE
        assert doc["metadata"].get("namespace") == expected, doc["metadata"]["name"]


# ----------------------------------------------------------------------------- RBAC


def rules(doc: Doc) -> set[tuple[str, str, str, tuple[str, ...]]]:
    """(apiGroup, resource, verb, resourceNames) for every permission a rule grants."""
    return {
        (group, resource, verb, tuple(rule.get("resourceNames", ())))
        for rule in doc["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_rbac_grants_only_what_the_controller_uses(install: list[Doc]) -> None:
    roles = [d for d in install if d["kind"] in ("Role", "ClusterRole")]
    for role in roles:
        assert not any("*" in s for s in strings(role["rules"])), role["metadata"]["name"]
    cluster = rules(one(install, "ClusterRole"))
    crd = "rollout.mlops.dev"
    assert cluster == {
        *((crd, "modelrollouts", v, ()) for v in ("get", "list", "watch", "update", "patch")),
        *((crd, "modelrollouts/status", v, ()) for v in ("get", "update", "patch")),
        (crd, "modelrollouts/finalizers", "update", ()),
        ("", "events", "create", ()),
        ("", "events", "patch", ()),
    }
    leases = one(install, "Role")
    assert leases["metadata"]["namespace"] == SYSTEM_NAMESPACE
    assert rules(leases) == {
        ("coordination.k8s.io", "leases", "create", ()),
        ("coordination.k8s.io", "leases", "get", ("rollout-controller",)),
        ("coordination.k8s.io", "leases", "update", ("rollout-controller",)),
    }


def test_the_bindings_give_the_roles_to_the_controllers_service_account(
    install: list[Doc],
) -> None:
    account = one(install, "ServiceAccount")
    deployment = one(install, "Deployment")
    assert (
        deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    )
    subject = {
        "kind": "ServiceAccount",
        "name": account["metadata"]["name"],
        "namespace": SYSTEM_NAMESPACE,
    }
    for binding_kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        binding = one(install, binding_kind)
        assert binding["subjects"] == [subject]
        assert binding["roleRef"]["kind"] == role_kind
        assert binding["roleRef"]["name"] == one(install, role_kind)["metadata"]["name"]


# ----------------------------------------------------------------------------- the Deployment


def controller_container(install: list[Doc]) -> Doc:
    pod = one(install, "Deployment")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    return container  # type: ignore[no-any-return]


def test_the_controller_runs_two_replicas_with_leader_election(install: list[Doc]) -> None:
    deployment = one(install, "Deployment", "rollout-controller")
    assert deployment["spec"]["replicas"] == 2
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    args = controller_container(install)["args"]
    assert "--all-namespaces" in args
    assert "--leader-elect" in args


def test_the_controller_flags_are_ones_the_cli_accepts(install: list[Doc]) -> None:
    command = typer.main.get_command(app)
    controller = command.commands["controller"]  # type: ignore[attr-defined]
    accepted = {opt for param in controller.params for opt in param.opts + param.secondary_opts}
    for arg in controller_container(install)["args"]:
        assert arg.split("=", 1)[0] in accepted, f"`rollout controller` has no option {arg}"


def test_pod_name_and_namespace_come_from_the_downward_api(install: list[Doc]) -> None:
    env = {e["name"]: e for e in controller_container(install)["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    # Every $(VAR) the args use is defined, or the kubelet passes it through literally.
    for arg in controller_container(install)["args"]:
        for name in re.findall(r"\$\((\w+)\)", arg):
            assert name in env, arg


def test_probes_and_ports(install: list[Doc]) -> None:
    container = controller_container(install)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        check = container[probe]["httpGet"]
        assert check["path"] == path
        assert ports.get(check["port"], check["port"]) == 8080
    assert "--health-address=:8080" in container["args"]


def test_resources_and_security_context_are_locked_down(install: list[Doc]) -> None:
    container = controller_container(install)
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][bound]), bound
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    pod = one(install, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0


def test_the_metrics_service_reaches_the_controllers_metrics_port(install: list[Doc]) -> None:
    service = one(install, "Service")
    labels = one(install, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    [port] = service["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("metrics", 9090, "metrics")


# ----------------------------------------------------------------------------- the example


def test_the_example_rollout_is_a_valid_spec_for_the_example_servers(example: list[Doc]) -> None:
    spec, policy = load_spec(EXAMPLES / "modelrollout.yaml")
    assert policy.steps
    versions = {}
    for name in ("ranker-v1", "ranker-v2"):
        [container] = one(example, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["MODEL_NAME"] == spec.spec.model
        versions[name] = env["MODEL_VERSION"]
    assert versions == {
        "ranker-v1": spec.spec.baseline.version,
        "ranker-v2": spec.spec.candidate.version,
    }
    # The router's HTTPRoute routes to the two versions' Services, all traffic on the baseline.
    router = spec.spec.router
    assert isinstance(router, GatewayApiRouterConfig)
    route = one(example, "HTTPRoute", router.http_route)
    ref = ObjectRef(HTTP_ROUTE, "models", router.http_route, "spec.router.httpRoute")
    assert HTTPRouteWeights(router, ref).weights(route, []) == ALL_BASELINE
    for backend, deployment in (
        (router.baseline_backend, "ranker-v1"),
        (router.candidate_backend, "ranker-v2"),
    ):
        selector = one(example, "Service", backend)["spec"]["selector"]
        for name in versions:
            labels = one(example, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
            assert (selector.items() <= labels.items()) == (name == deployment), (backend, name)


# ----------------------------------------------------------------------------- kubectl


def test_kubectl_kustomize_builds_the_install() -> None:
    assert (MANIFESTS / "crd.yaml").is_file(), "manifests/crd.yaml is generated by `rollout crd`"
    built = kubectl(Path("/nonexistent/kubeconfig"), "kustomize", str(MANIFESTS))
    assert built.returncode == 0, built.stderr
    docs = [d for d in yaml.safe_load_all(built.stdout) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(d["kind"] for d in objects(MANIFESTS))
    image = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "model-rollout:0.1.0"


def test_kubectl_apply_installs_and_runs_the_example(tmp_path: Path) -> None:
    with FakeApiServer() as server:
        # Kinds the fake does not serve by default, as the API server does.
        server.serve_kind("", "v1", "serviceaccounts", "ServiceAccount")
        for plural, kind, namespaced in (
            ("clusterroles", "ClusterRole", False),
            ("clusterrolebindings", "ClusterRoleBinding", False),
            ("roles", "Role", True),
            ("rolebindings", "RoleBinding", True),
        ):
            server.serve_kind("rbac.authorization.k8s.io", "v1", plural, kind, namespaced)
        kubeconfig = server.write_kubeconfig(tmp_path / "config")
        installed = kubectl(kubeconfig, "apply", "-k", str(MANIFESTS))
        assert installed.returncode == 0, installed.stderr
        created = installed.stdout.splitlines()
        assert len(created) == len(objects(MANIFESTS))
        assert all(line.endswith(" created") for line in created), created

        server.serve_kind("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
        namespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: models}\n"
        assert kubectl(kubeconfig, "apply", "-f", "-", stdin=namespace).returncode == 0
        applied = kubectl(kubeconfig, "apply", "-k", str(EXAMPLES), "-n", "models")
        assert applied.returncode == 0, applied.stderr
        again = kubectl(kubeconfig, "apply", "-k", str(EXAMPLES), "-n", "models")
        assert again.returncode == 0, again.stderr
        assert all(line.endswith(" unchanged") for line in again.stdout.splitlines())

        shown = kubectl(kubeconfig, "get", "modelrollouts", "-n", "models", "-o", "wide")
        assert shown.returncode == 0, shown.stderr
        header, row = shown.stdout.splitlines()
        assert header.split()[:3] == ["NAME", "PHASE", "BASELINE"]
        assert row.split()[:3] == ["ranker-2-4-0", "2.3.1", "2.4.0"]  # no phase yet
