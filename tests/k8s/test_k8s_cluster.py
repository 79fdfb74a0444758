"""Against a real cluster (KUBECONFIG set; skipped otherwise): its API server takes the CRD as
structural, and admits a ModelRollout the controller's validation refuses. Dry runs only:
nothing is left in the cluster."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from rollout.k8s.api import connect
from rollout.k8s.crd import CRD_NAME, GROUP, PLURAL, VERSION, crd_document
from rollout.k8s.resource import Refused, validate

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        not os.environ.get("KUBECONFIG"), reason="no KUBECONFIG: no real cluster to test against"
    ),
]


@pytest.fixture
def api_client() -> client.ApiClient:
    return connect(Path(os.environ["KUBECONFIG"].split(os.pathsep)[0]))


def test_the_api_server_accepts_the_crd_as_structural(api_client: client.ApiClient) -> None:
    body = client.V1CustomResourceDefinition.from_dict(crd_document())
    assert body is not None
    extensions = client.ApiextensionsV1Api(api_client)
    try:
        extensions.create_custom_resource_definition(body, dry_run="All")
    except client.ApiException as exc:
        assert exc.status == 409, exc.body  # already installed: validated when it was


def test_the_schema_admits_a_spec_the_controller_refuses(api_client: client.ApiClient) -> None:
    extensions = client.ApiextensionsV1Api(api_client)
    try:
        extensions.read_custom_resource_definition(CRD_NAME)
    except client.ApiException as exc:
        if exc.status == 404:
            pytest.skip("the ModelRollout CRD is not installed in this cluster")
        raise
    document: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelRollout",
        "metadata": {"name": "refused-by-the-controller", "namespace": "default"},
        "spec": {
            "model": "fraud",
            "baseline": {"version": "v1"},
            "candidate": {"version": "v2"},
            "router": {"kind": "nop"},
            "prometheus": {"url": "http://prometheus:9090"},
            "policy": {"steps": [{"weight": 50, "hold": "1m"}, {"weight": 10, "hold": "1m"}]},
        },
    }
    created = client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, document, dry_run="All"
    )
    assert isinstance(created, dict)
    judged = validate(created)
    assert isinstance(judged, Refused) and "spec.policy.steps" in judged.text
