"""deploy/k8s/ha validated offline: its custom resources against the operators' own CRD schemas (vendored
under tests/data/crds), the built overlay's standard resources against Kubernetes', and the HA rules."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from opscheck import KUBERNETES_VERSION, REPO, load_yaml, load_yaml_all

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="dev dependency kubernetes-validate")

HA = REPO / "deploy" / "k8s" / "ha"
CRDS = REPO / "tests" / "data" / "crds"
SERVICES = ("profile", "mfa", "notifier")


def _strict(schema: Any) -> Any:
    """The CRD schema as the API server's strict field validation reads it: an object schema with
    `properties` accepts no other field unless it says so (additionalProperties or preserve-unknown)."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _crd_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> a validator for every served version of the vendored CRDs."""
    validators = {}
    for path in sorted(CRDS.glob("*.yaml")):
        for crd in load_yaml_all(path):
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served"):
                    schema = _strict(version["schema"]["openAPIV3Schema"])
                    schema["properties"]["metadata"] = {"type": "object"}  # the API server's own part
                    validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return validators


@pytest.fixture(scope="module")
def validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    return _crd_validators()


@pytest.fixture(scope="module")
def overlay_files() -> list[dict[str, Any]]:
    kustomization = load_yaml(HA / "kustomization.yaml")
    return [doc for name in kustomization["resources"] if name.endswith(".yaml")
            for doc in load_yaml_all(HA / name)]


@pytest.fixture(scope="module")
def built() -> list[dict[str, Any]]:
    """`kubectl kustomize deploy/k8s/ha` (offline: kustomize is built into kubectl)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    result = subprocess.run([kubectl, "kustomize", str(HA)], capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _custom(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["apiVersion"].split("/")[0] in {"rabbitmq.com", "postgresql.cnpg.io"}]


def test_the_vendored_crds_are_the_two_the_overlay_needs(validators: dict[Any, Any]) -> None:
    assert ("rabbitmq.com/v1beta1", "RabbitmqCluster") in validators
    assert ("postgresql.cnpg.io/v1", "Cluster") in validators


def test_the_custom_resources_validate_against_the_operators_schemas(
        overlay_files: list[dict[str, Any]], validators: dict[Any, Any]) -> None:
    custom = _custom(overlay_files)
    assert {d["kind"] for d in custom} == {"RabbitmqCluster", "Cluster"}
    for doc in custom:
        errors = [e.message for e in validators[(doc["apiVersion"], doc["kind"])].iter_errors(doc)]
        assert not errors, (doc["kind"], errors)


def test_the_schema_check_rejects_an_unknown_field_and_a_wrong_type(
        overlay_files: list[dict[str, Any]], validators: dict[Any, Any]) -> None:
    cluster = next(d for d in overlay_files if d["kind"] == "Cluster")
    validator = validators[(cluster["apiVersion"], "Cluster")]
    misspelt = copy.deepcopy(cluster)
    misspelt["spec"]["instance"] = misspelt["spec"].pop("instances")
    wrong_type = copy.deepcopy(cluster)
    wrong_type["spec"]["instances"] = "three"
    for broken in (misspelt, wrong_type):
        assert list(validator.iter_errors(broken))


def test_the_stateful_parts_are_three_nodes_spread_over_kubernetes_nodes(overlay_files: list[dict[str, Any]]) -> None:
    rabbit = next(d for d in overlay_files if d["kind"] == "RabbitmqCluster")
    postgres = next(d for d in overlay_files if d["kind"] == "Cluster")
    assert rabbit["spec"]["replicas"] == 3
    anti = rabbit["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["topologyKey"] == "kubernetes.io/hostname"
    assert postgres["spec"]["instances"] == 3
    assert postgres["spec"]["affinity"]["podAntiAffinityType"] == "required"
    # Synchronous: a failover must not lose a commit the services saw succeed.
    assert postgres["spec"]["postgresql"]["synchronous"]["number"] >= 1
    pdb = next(d for d in overlay_files if d["kind"] == "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": rabbit["metadata"]["name"]}


def test_the_built_overlay_validates_and_runs_every_service_spread(built: list[dict[str, Any]]) -> None:
    for doc in built:
        if doc not in _custom(built):
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert all(d["metadata"].get("namespace") == "portal" for d in built)
    deployments = {d["metadata"]["name"]: d for d in built if d["kind"] == "Deployment"}
    pdbs = {d["metadata"]["name"]: d for d in built if d["kind"] == "PodDisruptionBudget"}
    for name in SERVICES:
        spec = deployments[name]["spec"]
        assert spec["replicas"] >= 2
        anti = spec["template"]["spec"]["affinity"]["podAntiAffinity"]
        terms = anti["preferredDuringSchedulingIgnoredDuringExecution"]
        assert terms[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        assert pdbs[name]["spec"]["minAvailable"] == 1
        assert spec["template"]["spec"]["containers"][0]["image"].startswith(f"portal-account-services/{name}:")


def test_the_example_secrets_use_the_rw_service_and_every_rabbitmq_node() -> None:
    from portal_shared.broker import broker_urls

    secrets = {d["metadata"]["name"]: d["stringData"] for d in load_yaml_all(HA / "secret.example.yaml")}
    for name in SERVICES:
        data = secrets[f"portal-{name}-secrets"]
        assert "@portal-db-rw.portal.svc:5432/" in data["DATABASE_URL"]
        assert len(broker_urls(data["AMQP_URL"])) == 3
    base = {d["metadata"]["name"] for d in load_yaml_all(REPO / "deploy" / "k8s" / "base" / "secret.example.yaml")}
    assert set(secrets) <= base, "the overlay's example names Secrets the base does not use"


def test_nothing_in_the_overlay_directory_is_left_unreferenced() -> None:
    kustomization = load_yaml(HA / "kustomization.yaml")
    used = {*kustomization["resources"], *(p["path"] for p in kustomization["patches"]), "kustomization.yaml",
            "secret.example.yaml"}
    assert {p.name for p in HA.iterdir()} <= {Path(u).name for u in used}
