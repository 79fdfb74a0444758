"""The fake API server keeps the Kubernetes API's semantics, checked through the official client
and kubectl only: what the controller's tests rely on must hold against a real cluster too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException

from tests.support.fake_kube import FakeApiServer
from tests.support.fake_kube.kubectl import kubectl
from tests.support.fake_kube.patching import merge_patch

GROUP, VERSION, PLURAL = "rollout.mlops.dev", "v1alpha1", "modelrollouts"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"

VERSION_REF = {
    "type": "object",
    "required": ["version"],
    "properties": {"version": {"type": "string"}},
}
ROLLOUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["spec"],
    "properties": {
        "spec": {
            "type": "object",
            "required": ["model", "baseline", "candidate"],
            "properties": {
                "model": {"type": "string", "pattern": "^[a-z][a-z0-9-]*$"},
                "baseline": VERSION_REF,
                "candidate": VERSION_REF,
                "policy": {"type": "string", "default": "default"},
                "router": {
                    "type": "object",
                    "properties": {"kind": {"type": "string", "enum": ["haproxy", "nop"]}},
                    "x-kubernetes-preserve-unknown-fields": True,
                },
            },
        },
        "status": {
            "type": "object",
            "properties": {
                "phase": {"type": "string"},
                "step": {"type": "integer", "minimum": 0},
                "message": {"type": "string"},
            },
        },
    },
}
ROLLOUT_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {
            "plural": PLURAL,
            "singular": "modelrollout",
            "kind": "ModelRollout",
            "shortNames": ["mro"],
        },
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": ROLLOUT_SCHEMA},
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Candidate", "type": "string", "jsonPath": ".spec.candidate.version"},
                    {"name": "Step", "type": "integer", "jsonPath": ".status.step"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    {
                        "name": "Message",
                        "type": "string",
                        "jsonPath": ".status.message",
                        "priority": 1,
                    },
                ],
            }
        ],
    },
}


def rollout(name: str, candidate: str = "2.4.0", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelRollout",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "model": "ranker",
            "baseline": {"version": "2.3.1"},
            "candidate": {"version": candidate},
        },
    }


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    with FakeApiServer() as running:
        yield running


@pytest.fixture
def api(server: FakeApiServer) -> Iterator[client.ApiClient]:
    with server.api_client() as api_client:
        client.ApiextensionsV1Api(api_client).create_custom_resource_definition(ROLLOUT_CRD)
        yield api_client


@pytest.fixture
def crs(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def status_of(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    assert body["kind"] == "Status"
    return body


def create(crs: client.CustomObjectsApi, body: dict[str, Any], ns: str = "default") -> Any:
    return crs.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)


def get(crs: client.CustomObjectsApi, name: str, ns: str = "default") -> Any:
    return crs.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)


def events_from(
    crs: client.CustomObjectsApi, resource_version: str, count: int, **kwargs: Any
) -> list[tuple[str, str, dict[str, Any]]]:
    """The next `count` watch events after `resource_version` (bounded by a generous timeout)."""
    seen: list[tuple[str, str, dict[str, Any]]] = []
    stream = watch.Watch()
    for event in stream.stream(
        crs.list_namespaced_custom_object,
        GROUP,
        VERSION,
        "default",
        PLURAL,
        resource_version=resource_version,
        timeout_seconds=60,
        **kwargs,
    ):
        seen.append((event["type"], event["object"]["metadata"]["name"], event["object"]))
        if len(seen) == count:
            stream.stop()
            break
    return seen


# ----------------------------------------------------------------------------- discovery


def test_discovery_lists_builtin_groups_and_a_crd_with_its_status_subresource(
    api: client.ApiClient,
) -> None:
    groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}
    assert {"apps", "coordination.k8s.io", "apiextensions.k8s.io", GROUP} <= set(groups)
    assert groups[GROUP].preferred_version.group_version == f"{GROUP}/{VERSION}"
    assert client.CoreApi(api).get_api_versions().versions == ["v1"]
    core = {r.name: r for r in client.CoreV1Api(api).get_api_resources().resources}
    assert {"namespaces", "services", "configmaps", "events"} <= set(core)
    assert core["namespaces"].namespaced is False
    assert core["configmaps"].short_names == ["cm"]

    resources = dynamic.DynamicClient(api).resources
    found = resources.get(api_version=f"{GROUP}/{VERSION}", kind="ModelRollout")
    assert (found.name, found.namespaced) == (PLURAL, True)
    status = resources.get(api_version=f"{GROUP}/{VERSION}", kind="ModelRollout").subresources
    assert "status" in status
    lease = resources.get(api_version="coordination.k8s.io/v1", kind="Lease")
    assert lease.name == "leases"


def test_a_deleted_crd_stops_being_served(
    api: client.ApiClient, crs: client.CustomObjectsApi
) -> None:
    create(crs, rollout("a"))
    client.ApiextensionsV1Api(api).delete_custom_resource_definition(f"{PLURAL}.{GROUP}")
    with pytest.raises(ApiException) as caught:
        get(crs, "a")
    assert caught.value.status == 404
    assert GROUP not in {g.name for g in client.ApisApi(api).get_api_versions().groups}


def test_serve_kind_adds_a_builtin_like_kind(server: FakeApiServer) -> None:
    server.serve_kind("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
    with server.api_client() as api:
        routes = client.CustomObjectsApi(api)
        created = routes.create_namespaced_custom_object(
            "gateway.networking.k8s.io",
            "v1",
            "default",
            "httproutes",
            {"metadata": {"name": "web"}, "spec": {"rules": [{"backendRefs": [{"name": "v1"}]}]}},
        )
        assert created["kind"] == "HTTPRoute"
        assert created["apiVersion"] == "gateway.networking.k8s.io/v1"
        kinds = dynamic.DynamicClient(api).resources
        assert kinds.get(api_version="gateway.networking.k8s.io/v1", kind="HTTPRoute").namespaced
        # A built-in-like kind takes strategic merge patch, unlike a custom resource.
        patched = routes.patch_namespaced_custom_object(
            "gateway.networking.k8s.io",
            "v1",
            "default",
            "httproutes",
            "web",
            {"metadata": {"labels": {"a": "b"}}},
            _content_type=STRATEGIC,
        )
        assert patched["metadata"]["labels"] == {"a": "b"}


# ----------------------------------------------------------------------------- create, read


def test_create_answers_201_with_server_metadata(
    server: FakeApiServer, crs: client.CustomObjectsApi
) -> None:
    created = create(crs, rollout("a"))
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and meta["resourceVersion"]
    assert meta["generation"] == 1
    assert meta["namespace"] == "default"
    assert ("POST", f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}", 201) in server.requests
    assert get(crs, "a") == created


def test_generate_name_gives_distinct_names(crs: client.CustomObjectsApi) -> None:
    body = rollout("")
    body["metadata"] = {"generateName": "canary-"}
    names = {create(crs, body)["metadata"]["name"] for _ in range(3)}
    assert len(names) == 3
    assert all(name.startswith("canary-") and len(name) == len("canary-") + 5 for name in names)


def test_create_of_an_existing_name_is_409_already_exists(crs: client.CustomObjectsApi) -> None:
    create(crs, rollout("a"))
    with pytest.raises(ApiException) as caught:
        create(crs, rollout("a"))
    assert caught.value.status == 409
    assert status_of(caught.value)["reason"] == "AlreadyExists"


def test_missing_objects_and_namespaces_are_404_not_found(crs: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as missing:
        get(crs, "nope")
    body = status_of(missing.value)
    assert (missing.value.status, body["reason"]) == (404, "NotFound")
    assert body["message"] == f'{PLURAL}.{GROUP} "nope" not found'
    with pytest.raises(ApiException) as no_namespace:
        create(crs, rollout("a"), ns="absent")
    assert no_namespace.value.status == 404
    assert status_of(no_namespace.value)["message"] == 'namespaces "absent" not found'


def test_invalid_names_are_422(crs: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as caught:
        create(crs, rollout("Not_A_Name"))
    assert caught.value.status == 422
    assert status_of(caught.value)["reason"] == "Invalid"


def test_the_crd_schema_prunes_unknown_fields_and_sets_defaults(
    crs: client.CustomObjectsApi,
) -> None:
    body = rollout("a")
    body["spec"]["typo"] = "dropped"
    body["spec"]["router"] = {"kind": "haproxy", "backend": "kept: the router preserves fields"}
    body["unknownTopLevel"] = 1
    created = create(crs, body)
    assert "typo" not in created["spec"] and "unknownTopLevel" not in created
    assert created["spec"]["router"]["backend"].startswith("kept")
    assert created["spec"]["policy"] == "default"
    status = crs.patch_namespaced_custom_object_status(
        GROUP, VERSION, "default", PLURAL, "a", {"status": {"phase": "Paused", "bogus": True}}
    )
    assert status["status"] == {"phase": "Paused"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"spec": {"candidate": None}}, "spec.candidate"),
        ({"spec": {"model": "Not A Name"}}, "spec.model"),
        ({"spec": {"router": {"kind": "istio"}}}, "spec.router.kind"),
        ({"spec": {"baseline": "2.3.1"}}, "spec.baseline"),
    ],
)
def test_the_crd_schema_refuses_invalid_objects_with_422(
    crs: client.CustomObjectsApi, change: dict[str, Any], field: str
) -> None:
    with pytest.raises(ApiException) as on_create:
        create(crs, merge_patch(rollout("a"), change))
    assert on_create.value.status == 422
    causes = status_of(on_create.value)["details"]["causes"]
    assert [c["field"] for c in causes] == [field]
    create(crs, rollout("a"))
    with pytest.raises(ApiException) as on_patch:
        crs.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "a", change)
    assert on_patch.value.status == 422
    assert get(crs, "a")["spec"] == rollout("a")["spec"] | {"policy": "default"}


def test_the_crd_schema_checks_status_writes(crs: client.CustomObjectsApi) -> None:
    create(crs, rollout("a"))
    with pytest.raises(ApiException) as caught:
        crs.patch_namespaced_custom_object_status(
            GROUP, VERSION, "default", PLURAL, "a", {"status": {"step": -1}}
        )
    assert caught.value.status == 422
    assert "status.step" in status_of(caught.value)["message"]


# ----------------------------------------------------------------------------- concurrency


def test_put_with_a_stale_resource_version_is_409_conflict(crs: client.CustomObjectsApi) -> None:
    first = create(crs, rollout("a"))
    fresh = dict(first, spec=dict(first["spec"], candidate={"version": "2.5.0"}))
    crs.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "a", fresh)
    stale = dict(first, spec=dict(first["spec"], candidate={"version": "9.9.9"}))
    with pytest.raises(ApiException) as caught:
        crs.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "a", stale)
    body = status_of(caught.value)
    assert (caught.value.status, body["reason"]) == (409, "Conflict")
    assert "the object has been modified" in body["message"]
    assert get(crs, "a")["spec"]["candidate"] == {"version": "2.5.0"}


def test_put_of_a_custom_resource_needs_a_resource_version(crs: client.CustomObjectsApi) -> None:
    created = create(crs, rollout("a"))
    del created["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as caught:
        crs.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "a", created)
    assert caught.value.status == 422


def test_a_patch_carrying_a_stale_resource_version_is_409(crs: client.CustomObjectsApi) -> None:
    first = create(crs, rollout("a"))
    crs.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "a", {"metadata": {"labels": {"x": "1"}}}
    )
    stale = {"metadata": {"resourceVersion": first["metadata"]["resourceVersion"]}}
    with pytest.raises(ApiException) as caught:
        crs.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "a", stale)
    assert caught.value.status == 409


def test_no_op_update_and_patch_keep_the_resource_version_and_send_no_event(
    crs: client.CustomObjectsApi,
) -> None:
    created = create(crs, rollout("a"))
    version = created["metadata"]["resourceVersion"]
    same = crs.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "a", created)
    patched = crs.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "a", {"spec": {"model": "ranker"}}
    )
    assert same["metadata"]["resourceVersion"] == version
    assert patched["metadata"]["resourceVersion"] == version
    create(crs, rollout("b"))
    # The first event after the creation is b's: the no-op writes made none.
    assert [(t, n) for t, n, _ in events_from(crs, version, 1)] == [("ADDED", "b")]


def test_every_real_change_bumps_one_global_resource_version(
    api: client.ApiClient, crs: client.CustomObjectsApi
) -> None:
    core = client.CoreV1Api(api)
    a = int(create(crs, rollout("a"))["metadata"]["resourceVersion"])
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    b = int(create(crs, rollout("b"))["metadata"]["resourceVersion"])
    assert a < int(cm.metadata.resource_version) < b
    listed = crs.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    assert int(listed["metadata"]["resourceVersion"]) >= b


# ----------------------------------------------------------------------------- generation, status


def test_generation_bumps_on_spec_changes_only(crs: client.CustomObjectsApi) -> None:
    create(crs, rollout("a"))

    def patch(body: dict[str, Any], status: bool = False) -> Any:
        method = (
            crs.patch_namespaced_custom_object_status
            if status
            else crs.patch_namespaced_custom_object
        )
        return method(GROUP, VERSION, "default", PLURAL, "a", body)

    labelled = patch({"metadata": {"labels": {"team": "search"}}})
    assert labelled["metadata"]["generation"] == 1
    with_status = patch({"status": {"phase": "Progressing"}}, status=True)
    assert with_status["metadata"]["generation"] == 1
    assert with_status["metadata"]["resourceVersion"] != labelled["metadata"]["resourceVersion"]
    changed = patch({"spec": {"candidate": {"version": "2.5.0"}}})
    assert changed["metadata"]["generation"] == 2


def test_builtin_generation_follows_the_spec(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment("default", deployment("web", "nginx:1"))
    labelled = apps.patch_namespaced_deployment(
        "web", "default", {"metadata": {"labels": {"a": "b"}}}, _content_type=MERGE
    )
    assert labelled.metadata.generation == 1
    scaled = apps.patch_namespaced_deployment(
        "web", "default", {"spec": {"replicas": 3}}, _content_type=MERGE
    )
    assert scaled.metadata.generation == 2


def test_the_status_subresource_and_the_main_resource_ignore_each_other(
    crs: client.CustomObjectsApi,
) -> None:
    with_status = rollout("a")
    with_status["status"] = {"phase": "Promoted"}
    created = create(crs, with_status)
    assert "status" not in created  # status is not set by a create either

    status_write = dict(created, status={"phase": "Progressing"})
    status_write["spec"] = dict(created["spec"], candidate={"version": "6.6.6"})
    status_write["metadata"] = dict(created["metadata"], labels={"sneaky": "yes"})
    after_status = crs.replace_namespaced_custom_object_status(
        GROUP, VERSION, "default", PLURAL, "a", status_write
    )
    assert after_status["status"] == {"phase": "Progressing"}
    assert after_status["spec"]["candidate"] == {"version": "2.4.0"}
    assert after_status["metadata"].get("labels") == {}

    main_write = dict(after_status, status={"phase": "RolledBack"})
    main_write["spec"] = dict(after_status["spec"], candidate={"version": "2.5.0"})
    after_main = crs.replace_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "a", main_write
    )
    assert after_main["status"] == {"phase": "Progressing"}
    assert after_main["spec"]["candidate"] == {"version": "2.5.0"}


def test_status_of_a_kind_without_the_subresource_is_404(
    server: FakeApiServer, api: client.ApiClient, tmp_path: Path
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    kubeconfig = server.write_kubeconfig(tmp_path / "config")
    main = kubectl(kubeconfig, "get", "--raw", "/api/v1/namespaces/default/configmaps/c")
    assert main.returncode == 0, main.stderr
    status = kubectl(kubeconfig, "get", "--raw", "/api/v1/namespaces/default/configmaps/c/status")
    assert status.returncode != 0
    assert "NotFound" in status.stderr


# ----------------------------------------------------------------------------- patches


def test_merge_patch_merges_maps_and_null_deletes(crs: client.CustomObjectsApi) -> None:
    create(crs, rollout("a", team="search", tier="gold"))
    patched = crs.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "a",
        {"metadata": {"labels": {"tier": None, "env": "prod"}}, "spec": {"policy": "default"}},
    )
    assert patched["metadata"]["labels"] == {"team": "search", "env": "prod"}
    assert patched["spec"]["policy"] == "default"
    assert patched["spec"]["model"] == "ranker"


def test_json_patch_applies_and_a_failed_test_is_422(crs: client.CustomObjectsApi) -> None:
    create(crs, rollout("a"))
    ops = [
        {"op": "test", "path": "/spec/candidate/version", "value": "2.4.0"},
        {"op": "replace", "path": "/spec/candidate/version", "value": "2.5.0"},
    ]
    patched = crs.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "a", ops, _content_type=JSON_PATCH
    )
    assert patched["spec"]["candidate"]["version"] == "2.5.0"
    with pytest.raises(ApiException) as caught:  # the same test fails now
        crs.patch_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, "a", ops, _content_type=JSON_PATCH
        )
    assert caught.value.status == 422
    assert get(crs, "a")["spec"]["candidate"]["version"] == "2.5.0"


def test_a_json_patch_that_is_not_a_list_is_400(
    server: FakeApiServer, api: client.ApiClient, tmp_path: Path
) -> None:
    client.CoreV1Api(api).create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    kubeconfig = server.write_kubeconfig(tmp_path / "config")
    refused = kubectl(kubeconfig, "patch", "configmap", "c", "--type=json", "-p", '{"data": {}}')
    assert refused.returncode != 0
    assert "BadRequest" in refused.stderr
    assert ("PATCH", "/api/v1/namespaces/default/configmaps/c", 400) in server.requests


def test_strategic_merge_patch_is_415_on_a_custom_resource(crs: client.CustomObjectsApi) -> None:
    create(crs, rollout("a"))
    with pytest.raises(ApiException) as caught:
        crs.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            "a",
            {"spec": {"model": "x"}},
            _content_type=STRATEGIC,
        )
    assert caught.value.status == 415
    assert status_of(caught.value)["reason"] == "UnsupportedMediaType"


def deployment(name: str, image: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {"name": "server", "image": image, "env": [{"name": "A", "value": "1"}]},
                        {"name": "sidecar", "image": "proxy:1"},
                    ]
                },
            },
        },
    }


def test_strategic_merge_patch_merges_builtin_lists_by_key(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment("default", deployment("web", "model:1"))
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "server", "image": "model:2", "env": [{"name": "B", "value": "2"}]}
                    ]
                }
            }
        }
    }
    patched = apps.patch_namespaced_deployment("web", "default", patch, _content_type=STRATEGIC)
    containers = {c.name: c for c in patched.spec.template.spec.containers}
    assert set(containers) == {"server", "sidecar"}  # a merge patch would have dropped one
    assert containers["server"].image == "model:2"
    assert [(e.name, e.value) for e in containers["server"].env] == [("A", "1"), ("B", "2")]
    removed = apps.patch_namespaced_deployment(
        "web",
        "default",
        {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}},
        _content_type=STRATEGIC,
    )
    assert [c.name for c in removed.spec.template.spec.containers] == ["server"]


# ----------------------------------------------------------------------------- deletion


def test_finalizers_hold_a_deleted_object_until_the_last_one_is_removed(
    crs: client.CustomObjectsApi,
) -> None:
    body = rollout("a")
    body["metadata"]["finalizers"] = ["rollout.mlops.dev/traffic", "example.com/other"]
    created = create(crs, body)
    crs.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "a")
    marked = get(crs, "a")
    assert marked["metadata"]["deletionTimestamp"]
    assert marked["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]

    with pytest.raises(ApiException) as adding:
        crs.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            "a",
            {"metadata": {"finalizers": [*body["metadata"]["finalizers"], "late/one"]}},
        )
    assert adding.value.status == 422

    one_left = crs.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "a", {"metadata": {"finalizers": ["example.com/other"]}}
    )
    assert one_left["metadata"]["finalizers"] == ["example.com/other"]
    assert get(crs, "a")["metadata"]["deletionTimestamp"]

    crs.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "a", {"metadata": {"finalizers": None}}
    )
    with pytest.raises(ApiException) as gone:
        get(crs, "a")
    assert gone.value.status == 404
    history = events_from(crs, marked["metadata"]["resourceVersion"], 2)
    assert [(t, n) for t, n, _ in history] == [("MODIFIED", "a"), ("DELETED", "a")]


def test_delete_without_finalizers_removes_at_once(crs: client.CustomObjectsApi) -> None:
    created = create(crs, rollout("a"))
    crs.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "a")
    with pytest.raises(ApiException) as gone:
        get(crs, "a")
    assert gone.value.status == 404
    [(kind, name, last)] = events_from(crs, created["metadata"]["resourceVersion"], 1)
    assert (kind, name) == ("DELETED", "a")
    assert int(last["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])


def test_delete_preconditions_are_checked(crs: client.CustomObjectsApi) -> None:
    create(crs, rollout("a"))
    with pytest.raises(ApiException) as caught:
        crs.delete_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            "a",
            body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="other")),
        )
    assert caught.value.status == 409
    assert get(crs, "a")


def test_deleting_a_namespace_deletes_what_it_holds(
    api: client.ApiClient, crs: client.CustomObjectsApi
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "team"}})
    create(crs, rollout("a"), ns="team")
    core.create_namespaced_config_map("team", {"metadata": {"name": "c"}})
    core.delete_namespace("team")
    assert "team" not in {n.metadata.name for n in core.list_namespace().items}
    assert crs.list_namespaced_custom_object(GROUP, VERSION, "team", PLURAL)["items"] == []
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("team", {"metadata": {"name": "d"}})
    assert caught.value.status == 404


# ----------------------------------------------------------------------------- list, watch


def test_watch_starts_after_the_given_resource_version(crs: client.CustomObjectsApi) -> None:
    create(crs, rollout("before"))
    start = create(crs, rollout("a"))["metadata"]["resourceVersion"]
    create(crs, rollout("b"))
    crs.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "a", {"spec": {"candidate": {"version": "3.0.0"}}}
    )
    crs.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "b")
    seen = events_from(crs, start, 3)
    assert [(t, n) for t, n, _ in seen] == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    assert seen[1][2]["spec"]["candidate"]["version"] == "3.0.0"


def test_watch_without_a_resource_version_starts_with_the_current_objects(
    crs: client.CustomObjectsApi,
) -> None:
    create(crs, rollout("a"))
    create(crs, rollout("b"))
    seen: list[tuple[str, str]] = []
    stream = watch.Watch()
    for event in stream.stream(
        crs.list_namespaced_custom_object, GROUP, VERSION, "default", PLURAL, timeout_seconds=60
    ):
        seen.append((event["type"], event["object"]["metadata"]["name"]))
        if len(seen) == 2:
            create(crs, rollout("c"))
        if len(seen) == 3:
            stream.stop()
            break
    assert seen == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c")]


def test_watch_ends_at_its_timeout_with_a_bookmark_when_asked(crs: client.CustomObjectsApi) -> None:
    created = create(crs, rollout("a"))
    events = list(
        watch.Watch().stream(
            crs.list_namespaced_custom_object,
            GROUP,
            VERSION,
            "default",
            PLURAL,
            resource_version=created["metadata"]["resourceVersion"],
            timeout_seconds=1,
            allow_watch_bookmarks=True,
        )
    )
    assert [e["type"] for e in events] == ["BOOKMARK"]
    bookmark = events[0]["raw_object"]
    assert bookmark["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_a_watch_from_beyond_the_kept_history_gets_410_gone() -> None:
    with FakeApiServer(history_limit=3) as server, server.api_client() as api:
        client.ApiextensionsV1Api(api).create_custom_resource_definition(ROLLOUT_CRD)
        crs = client.CustomObjectsApi(api)
        first = create(crs, rollout("a"))["metadata"]["resourceVersion"]
        for name in "bcde":
            create(crs, rollout(name))
        with pytest.raises(ApiException) as caught:
            events_from(crs, first, 1)
        assert caught.value.status == 410
        assert "Expired" in str(caught.value.reason)

        # The raw stream: HTTP 200, then one ERROR event carrying a 410 Status.
        response = crs.list_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            watch=True,
            resource_version=first,
            timeout_seconds=60,
            _preload_content=False,
        )
        lines = [line for line in response.data.decode().splitlines() if line]
        assert response.status == 200
        [error] = [json.loads(line) for line in lines]
        assert error["type"] == "ERROR"
        assert (error["object"]["code"], error["object"]["reason"]) == (410, "Expired")

        # A watch from a version still in the history works.
        recent = crs.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
        create(crs, rollout("f"))
        later = events_from(crs, recent["metadata"]["resourceVersion"], 1)
        assert [(t, n) for t, n, _ in later] == [("ADDED", "f")]


def test_pages_of_a_list_are_one_snapshot_and_an_old_continue_is_410(
    crs: client.CustomObjectsApi,
) -> None:
    for name in "abc":
        create(crs, rollout(name))
    page = crs.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, limit=2)
    assert [i["metadata"]["name"] for i in page["items"]] == ["a", "b"]
    assert page["metadata"]["remainingItemCount"] == 1
    create(crs, rollout("d"))  # after the snapshot: not in the next page
    crs.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "c")
    rest = crs.list_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, limit=2, _continue=page["metadata"]["continue"]
    )
    assert [i["metadata"]["name"] for i in rest["items"]] == ["c"]
    assert rest["metadata"]["resourceVersion"] == page["metadata"]["resourceVersion"]
    assert not rest["metadata"].get("continue")

    with FakeApiServer() as server, server.api_client() as api:
        # Across namespaces, pages follow (namespace, name) order: none skipped or repeated.
        core = client.CoreV1Api(api)
        for namespace in ("a", "a-b"):
            core.create_namespace({"metadata": {"name": namespace}})
            for name in ("x", "y"):
                core.create_namespaced_config_map(namespace, {"metadata": {"name": name}})
        seen, token = [], None
        while True:
            page = core.list_config_map_for_all_namespaces(limit=1, _continue=token)
            seen += [(c.metadata.namespace, c.metadata.name) for c in page.items]
            token = page.metadata._continue
            if not token:
                break
        assert seen == [("a", "x"), ("a", "y"), ("a-b", "x"), ("a-b", "y")]

    with FakeApiServer(history_limit=2) as small, small.api_client() as api:
        core = client.CoreV1Api(api)
        for name in "abc":
            core.create_namespaced_config_map("default", {"metadata": {"name": name}})
        first = core.list_namespaced_config_map("default", limit=1)
        for name in "def":
            core.create_namespaced_config_map("default", {"metadata": {"name": name}})
        with pytest.raises(ApiException) as caught:
            core.list_namespaced_config_map("default", limit=1, _continue=first.metadata._continue)
        assert caught.value.status == 410


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=gold", ["a"]),
        ("tier==gold", ["a"]),
        ("tier!=gold", ["b", "c"]),
        ("tier in (gold,silver)", ["a", "b"]),
        ("tier notin (gold)", ["b", "c"]),
        ("tier", ["a", "b"]),
        ("!tier", ["c"]),
        ("tier,env=prod", ["b"]),
        ("tier in (gold, silver),!env", ["a"]),
    ],
)
def test_label_selectors_filter_lists(
    crs: client.CustomObjectsApi, selector: str, expected: list[str]
) -> None:
    create(crs, rollout("a", tier="gold"))
    create(crs, rollout("b", tier="silver", env="prod"))
    create(crs, rollout("c", env="dev"))
    listed = crs.list_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, label_selector=selector
    )
    assert [i["metadata"]["name"] for i in listed["items"]] == expected


def test_a_bad_label_selector_is_400(crs: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as caught:
        crs.list_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, label_selector="tier in gold"
        )
    assert caught.value.status == 400


def test_a_watch_sees_objects_enter_and_leave_its_selector(crs: client.CustomObjectsApi) -> None:
    start = create(crs, rollout("a", tier="gold"))["metadata"]["resourceVersion"]
    create(crs, rollout("b", tier="silver"))
    for tier in ("silver", "gold"):
        crs.patch_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, "a", {"metadata": {"labels": {"tier": tier}}}
        )
    seen = events_from(crs, start, 3, label_selector="tier=silver")
    assert [(t, n) for t, n, _ in seen] == [("ADDED", "b"), ("ADDED", "a"), ("DELETED", "a")]


def test_field_selector_on_name(api: client.ApiClient, crs: client.CustomObjectsApi) -> None:
    create(crs, rollout("a"))
    create(crs, rollout("b"))
    listed = crs.list_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, field_selector="metadata.name=b"
    )
    assert [i["metadata"]["name"] for i in listed["items"]] == ["b"]
    others = crs.list_cluster_custom_object(
        GROUP, VERSION, PLURAL, field_selector="metadata.name!=b,metadata.namespace=default"
    )
    assert [i["metadata"]["name"] for i in others["items"]] == ["a"]
    with pytest.raises(ApiException) as caught:
        crs.list_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, field_selector="spec.model=ranker"
        )
    assert caught.value.status == 400


# ----------------------------------------------------------------------------- faults, config


def test_fail_next_injects_errors_then_serves(
    server: FakeApiServer, crs: client.CustomObjectsApi
) -> None:
    create(crs, rollout("a"))
    server.fail_next("GET", r"/modelrollouts/a$", 503, times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as caught:
            get(crs, "a")
        assert caught.value.status == 503
        assert status_of(caught.value)["reason"] == "ServiceUnavailable"
    assert get(crs, "a")["metadata"]["name"] == "a"
    path = f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}/a"
    assert [r.status for r in server.requests if r.path == path and r.method == "GET"] == [
        503,
        503,
        200,
    ]


def test_a_restart_keeps_the_port_and_the_objects_and_cuts_watches(
    server: FakeApiServer, crs: client.CustomObjectsApi
) -> None:
    created = create(crs, rollout("a"))
    url = server.url
    stream = watch.Watch().stream(
        crs.list_namespaced_custom_object, GROUP, VERSION, "default", PLURAL,
        resource_version=created["metadata"]["resourceVersion"], timeout_seconds=60,
    )  # fmt: skip
    create(crs, rollout("b"))
    assert next(stream)["object"]["metadata"]["name"] == "b"
    server.stop()
    with pytest.raises(urllib3.exceptions.ProtocolError):  # the stream is cut
        next(stream)
    with pytest.raises(urllib3.exceptions.MaxRetryError):  # connection refused while down
        get(crs, "a")
    server.start()
    assert server.url == url
    assert get(crs, "a")["metadata"]["uid"] == created["metadata"]["uid"]
    create(crs, rollout("c"))
    later = events_from(crs, created["metadata"]["resourceVersion"], 2)
    assert [(t, n) for t, n, _ in later] == [("ADDED", "b"), ("ADDED", "c")]


def test_the_kubeconfig_serves_the_python_client(server: FakeApiServer, tmp_path: Path) -> None:
    kubeconfig = server.write_kubeconfig(tmp_path / "config")
    with config.new_client_from_config(config_file=str(kubeconfig)) as api:
        names = [n.metadata.name for n in client.CoreV1Api(api).list_namespace().items]
    assert names == ["default", "kube-public", "kube-system"]


# ----------------------------------------------------------------------------- kubectl


def test_kubectl_get_shows_the_printer_columns(
    server: FakeApiServer, crs: client.CustomObjectsApi, tmp_path: Path
) -> None:
    create(crs, rollout("canary", candidate="2.4.0"))
    crs.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "canary",
        {"status": {"phase": "Progressing", "step": 2, "message": "holding at 10%"}},
    )
    kubeconfig = server.write_kubeconfig(tmp_path / "config")
    shown = kubectl(kubeconfig, "get", PLURAL)
    assert shown.returncode == 0, shown.stderr
    header, row = shown.stdout.splitlines()
    assert header.split() == ["NAME", "PHASE", "CANDIDATE", "STEP", "AGE"]
    assert row.split()[:4] == ["canary", "Progressing", "2.4.0", "2"]
    wide = kubectl(kubeconfig, "get", "mro", "canary", "-o", "wide")
    assert wide.returncode == 0, wide.stderr
    assert wide.stdout.splitlines()[0].split()[-1] == "MESSAGE"
    assert wide.stdout.splitlines()[1].endswith("holding at 10%")
    as_json = kubectl(kubeconfig, "get", "modelrollout", "canary", "-o", "json")
    assert json.loads(as_json.stdout)["status"]["step"] == 2
    assert any("as=Table" not in r.path for r in server.requests)  # sanity: plain paths logged


def test_kubectl_apply_creates_then_configures(server: FakeApiServer, tmp_path: Path) -> None:
    manifest = tmp_path / "app.yaml"
    crd = tmp_path / "crd.yaml"
    crd.write_text(json.dumps(ROLLOUT_CRD))
    kubeconfig = server.write_kubeconfig(tmp_path / "config")
    applied = kubectl(kubeconfig, "apply", "-f", str(crd))
    assert applied.returncode == 0, applied.stderr

    def write(image: str, candidate: str) -> None:
        documents = [
            {"apiVersion": "apps/v1", "kind": "Deployment", **deployment("web", image)},
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8000}]},
            },
            rollout("web", candidate=candidate),
        ]
        manifest.write_text(yaml.safe_dump_all(documents))

    write("model:1", "2.4.0")
    first = kubectl(kubeconfig, "apply", "-f", str(manifest))
    assert first.returncode == 0, first.stderr
    assert first.stdout.split("\n")[:3] == [
        "deployment.apps/web created",
        "service/web created",
        "modelrollout.rollout.mlops.dev/web created",
    ]
    write("model:2", "2.5.0")
    second = kubectl(kubeconfig, "apply", "-f", str(manifest))
    assert second.returncode == 0, second.stderr
    assert second.stdout.split("\n")[:3] == [
        "deployment.apps/web configured",
        "service/web unchanged",
        "modelrollout.rollout.mlops.dev/web configured",
    ]
    with server.api_client() as api:
        web = client.AppsV1Api(api).read_namespaced_deployment("web", "default")
        assert [c.image for c in web.spec.template.spec.containers] == ["model:2", "proxy:1"]
        assert web.metadata.generation == 2
        assert get(client.CustomObjectsApi(api), "web")["spec"]["candidate"]["version"] == "2.5.0"
    patches = [r for r in server.requests if r.method == "PATCH"]
    assert [r.path.rsplit("/", 2)[-2] for r in patches] == ["deployments", PLURAL]
