"""deploy/k8s/base validated against the Kubernetes schemas (kubernetes-validate) and our rules."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from opscheck import (
    K8S_BASE,
    KUBERNETES_VERSION,
    NGINX_DIR,
    REPO,
    SERVICES,
    bootstrap_settings,
    load_yaml,
    load_yaml_all,
    service_settings,
)

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="dev dependency kubernetes-validate")

KUSTOMIZATION = K8S_BASE / "kustomization.yaml"
SECRET_EXAMPLE = K8S_BASE / "secret.example.yaml"


@pytest.fixture(scope="module")
def kustomization() -> dict[str, Any]:
    return load_yaml(KUSTOMIZATION)


@pytest.fixture(scope="module")
def resources(kustomization: dict[str, Any]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for name in _manifest_files(kustomization):
        docs += load_yaml_all(K8S_BASE / name)
    return docs


def _manifest_files(kustomization: dict[str, Any]) -> list[str]:
    """The base's own manifests (the other resources are kustomization directories, like ../../nginx)."""
    return [name for name in kustomization["resources"] if name.endswith(".yaml")]


def _of_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def _validate(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_every_manifest_validates_against_the_pinned_kubernetes_schemas(resources: list[dict[str, Any]]) -> None:
    assert resources
    for doc in [*resources, *load_yaml_all(SECRET_EXAMPLE)]:
        _validate(doc)


def test_the_validator_rejects_a_broken_manifest(resources: list[dict[str, Any]]) -> None:
    deployment = copy.deepcopy(next(r for r in resources if r["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pathh"] = "/x"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(deployment)
    deployment = copy.deepcopy(next(r for r in resources if r["kind"] == "Deployment"))
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(deployment)


def test_kustomization_lists_every_manifest_and_no_secret(kustomization: dict[str, Any],
                                                          resources: list[dict[str, Any]]) -> None:
    on_disk = {p.name for p in K8S_BASE.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert set(_manifest_files(kustomization)) == on_disk
    assert set(kustomization["resources"]) - on_disk == {"../../nginx"}
    assert not [r for r in resources if r["kind"] == "Secret"], "Secret values are never committed"
    for doc in load_yaml_all(SECRET_EXAMPLE):
        assert doc["kind"] == "Secret"
        assert all("REPLACE" in v for v in doc["stringData"].values()), "secret.example.yaml holds placeholders only"


def test_the_gateway_configmap_holds_the_shared_routes_and_the_k8s_main_file() -> None:
    """deploy/nginx/kustomization.yaml generates it from the very files the local stack and the image use."""
    generated = load_yaml(NGINX_DIR / "kustomization.yaml")
    (generator,) = generated["configMapGenerator"]
    assert generator["name"] == "portal-gateway-nginx"
    files = dict(entry.split("=") if "=" in entry else (entry, entry) for entry in generator["files"])
    assert files == {"nginx.conf": "nginx.k8s.conf", "http.conf": "http.conf", "routes.conf": "routes.conf",
                     "security-headers.conf": "security-headers.conf"}
    for source in files.values():
        assert (NGINX_DIR / source).is_file(), source
    # every file an included nginx file includes is in the ConfigMap too
    for source in files.values():
        for included in re.findall(r"^\s*include\s+(\S+);", (NGINX_DIR / source).read_text(), re.M):
            assert included in files, f"{source} includes {included}, which the ConfigMap lacks"


def test_the_gateway_mounts_the_configmap_where_the_image_reads_its_configuration(
        resources: list[dict[str, Any]]) -> None:
    pod = _pod_spec(_of_kind(resources, "Deployment")["gateway"])
    (volume,) = [v for v in pod["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == "portal-gateway-nginx"
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    entrypoint = (REPO / "deploy" / "docker" / "Dockerfile.gateway").read_text()
    assert f'"-c", "{mount["mountPath"]}/nginx.conf"' in entrypoint


def _pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


def test_deployments_are_replicated_probed_bounded_and_locked_down(resources: list[dict[str, Any]]) -> None:
    deployments = _of_kind(resources, "Deployment")
    assert set(deployments) == {*SERVICES, "gateway"}
    for name, deployment in deployments.items():
        assert deployment["spec"]["replicas"] >= 2, name
        pod = _pod_spec(deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        assert pod.get("automountServiceAccountToken") is False, name
        for container in pod["containers"]:
            where = f"{name}/{container['name']}"
            ready, live = container.get("readinessProbe"), container.get("livenessProbe")
            assert ready and live, f"{where} needs readiness and liveness probes"
            if name in SERVICES:
                assert ready["httpGet"]["path"] == "/health/ready", where
                assert live["httpGet"]["path"] == "/health/live", where
                assert container["ports"][0]["containerPort"] == SERVICES[name], where
            resources_ = container.get("resources", {})
            assert {"cpu", "memory"} <= set(resources_.get("requests", {})), f"{where} needs requests"
            assert "memory" in resources_.get("limits", {}), f"{where} needs a memory limit"
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_each_deployment_has_a_pdb_and_a_service(resources: list[dict[str, Any]]) -> None:
    pdbs = _of_kind(resources, "PodDisruptionBudget").values()
    services = _of_kind(resources, "Service").values()
    for name, deployment in _of_kind(resources, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert _selects(deployment["spec"]["selector"]["matchLabels"], labels), name
        covering = [p for p in pdbs if _selects(p["spec"]["selector"]["matchLabels"], labels)]
        assert len(covering) == 1, f"{name}: {len(covering)} PodDisruptionBudgets"
        spec = covering[0]["spec"]
        assert 1 <= spec.get("minAvailable", 0) < deployment["spec"]["replicas"], (
            f"{name}: minAvailable must keep one pod up yet let a node drain")
        assert any(_selects(s["spec"]["selector"], labels) for s in services), f"{name} has no Service"


def _provided(pod: dict[str, Any], configmaps: dict[str, dict[str, Any]],
              secrets: dict[str, dict[str, Any]]) -> set[str]:
    container = pod["containers"][0]
    names = {e["name"] for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            names |= set(configmaps[source["configMapRef"]["name"]]["data"])
        if "secretRef" in source:
            secret = secrets.get(source["secretRef"]["name"])
            assert secret, f"{source['secretRef']['name']} is not described in secret.example.yaml"
            names |= set(secret["stringData"])
    return names


def test_every_required_setting_reaches_its_service(resources: list[dict[str, Any]]) -> None:
    configmaps = _of_kind(resources, "ConfigMap")
    secrets = _of_kind(load_yaml_all(SECRET_EXAMPLE), "Secret")
    deployments = _of_kind(resources, "Deployment")
    for service in SERVICES:
        provided = _provided(_pod_spec(deployments[service]), configmaps, secrets)
        required = {name for name, needed in service_settings(service).items() if needed}
        assert required and not sorted(required - provided), f"{service} lacks {sorted(required - provided)}"
        assert f"portal-{service}-secrets" in str(_pod_spec(deployments[service])["containers"][0]["envFrom"])
    job = _of_kind(resources, "Job")["portal-db-bootstrap"]
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == ["python", "-m", "portal_shared.db_bootstrap"]
    missing = bootstrap_settings() - _provided(pod, configmaps, secrets)
    assert not missing, f"the bootstrap Job lacks {sorted(missing)}"


def test_each_service_gets_only_its_own_database_secret(resources: list[dict[str, Any]]) -> None:
    for service, deployment in _of_kind(resources, "Deployment").items():
        refs = [s["secretRef"]["name"] for s in _pod_spec(deployment)["containers"][0].get("envFrom", [])
                if "secretRef" in s]
        assert "portal-db-bootstrap" not in refs, service
        assert not [r for r in refs if r.endswith("-secrets") and r not in
                    {"portal-shared-secrets", f"portal-{service}-secrets"}], f"{service} gets {refs}"


def test_images_are_set_through_the_kustomization(kustomization: dict[str, Any],
                                                  resources: list[dict[str, Any]]) -> None:
    managed = {i["name"] for i in kustomization["images"]}
    for doc in resources:
        if doc["kind"] in {"Deployment", "Job"}:
            for container in doc["spec"]["template"]["spec"]["containers"]:
                assert container["image"].split(":")[0] in managed, container["image"]
