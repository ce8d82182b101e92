"""`kubectl kustomize deploy/k8s/base` (kustomize itself, not a reading of its files): the gateway's
ConfigMap is generated from deploy/nginx's own files and the Deployment mounts it by its hashed name."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
NGINX_DIR = REPO / "deploy" / "nginx"


@pytest.fixture(scope="module")
def built() -> list[dict[str, Any]]:
    kubectl, kustomize = shutil.which("kubectl"), shutil.which("kustomize")
    if kubectl:
        command = [kubectl, "kustomize", str(REPO / "deploy" / "k8s" / "base")]
    elif kustomize:
        command = [kustomize, "build", str(REPO / "deploy" / "k8s" / "base")]
    else:
        pytest.skip("neither kubectl nor kustomize is installed (tests/unit/ops/test_ops_k8s.py read the files)")
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_the_configmap_holds_the_very_files(built: list[dict[str, Any]]) -> None:
    (configmap,) = [d for d in built if d["kind"] == "ConfigMap"
                    and d["metadata"]["name"].startswith("portal-gateway-nginx-")]
    assert configmap["metadata"]["namespace"] == "portal"
    expected = {"nginx.conf": "nginx.k8s.conf", "http.conf": "http.conf", "routes.conf": "routes.conf",
                "security-headers.conf": "security-headers.conf"}
    assert configmap["data"] == {
        key: (NGINX_DIR / source).read_text() for key, source in expected.items()}


def test_the_gateway_mounts_the_generated_name(built: list[dict[str, Any]]) -> None:
    (configmap,) = [d["metadata"]["name"] for d in built if d["kind"] == "ConfigMap"
                    and d["metadata"]["name"].startswith("portal-gateway-nginx-")]
    gateway = next(d for d in built if d["kind"] == "Deployment" and d["metadata"]["name"] == "gateway")
    pod = gateway["spec"]["template"]["spec"]
    volumes = {v["name"]: v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
    assert list(volumes.values()) == [configmap]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts[next(iter(volumes))] == "/etc/nginx/portal"
