"""docker-compose.yml's optional profiles, checked offline: `tracing` (otel-collector → jaeger) and
`monitoring` (prometheus → grafana). Each mounted config exists and names the compose services it talks to,
and nothing in the always-on stack depends on them, so the stack runs the same without the profiles."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from opscheck import COMPOSE_FILE, ENV_EXAMPLE, REPO, SERVICES, load_yaml

PROFILED = {"otel-collector": "tracing", "jaeger": "tracing", "prometheus": "monitoring", "grafana": "monitoring"}
IMAGES = {"otel-collector": "otel/opentelemetry-collector-contrib", "jaeger": "jaegertracing/all-in-one",
          "prometheus": "prom/prometheus", "grafana": "grafana/grafana"}
COLLECTOR_CONFIG = REPO / "deploy" / "otel" / "collector.yaml"
JAEGER_OTLP_GRPC = 4317  # Jaeger's OTLP/gRPC receiver (COLLECTOR_OTLP_ENABLED)


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)["services"]


@pytest.fixture(scope="module")
def collector() -> dict[str, Any]:
    return load_yaml(COLLECTOR_CONFIG)


def _bind_mounts(service: dict[str, Any]) -> dict[str, tuple[Path, str]]:
    """container path -> (repository path, mode) of the service's `./…` bind mounts."""
    mounts = {}
    for volume in service.get("volumes") or []:
        source, target, *mode = str(volume).split(":")
        if source.startswith("./"):
            mounts[target] = (REPO / source, mode[0] if mode else "rw")
    return mounts


def _depends(service: dict[str, Any]) -> set[str]:
    return set(service.get("depends_on") or {})


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


# ---- the profiles ------------------------------------------------------------------------------------------

def test_the_optional_containers_are_in_their_profile_and_nothing_else_is(services: dict[str, Any]) -> None:
    for name, service in services.items():
        assert service.get("profiles", []) == ([PROFILED[name]] if name in PROFILED else []), name


def test_the_always_on_stack_depends_on_no_optional_container(services: dict[str, Any]) -> None:
    """Compose refuses a dependency on a container whose profile is off; and the services must run without."""
    for name, service in services.items():
        if name not in PROFILED:
            assert not _depends(service) & set(PROFILED), f"{name} would need an optional profile"
        else:
            for dependency in _depends(service) & set(PROFILED):
                assert PROFILED[dependency] == PROFILED[name], f"{name} -> {dependency}: another profile"


def test_the_optional_images_are_pinned_to_a_release(services: dict[str, Any]) -> None:
    for name, repository in IMAGES.items():
        image, _, tag = services[name]["image"].partition(":")
        assert image == repository and re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: pin {repository} to a release"


def test_every_mounted_config_exists_and_is_read_only(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for target, (source, mode) in _bind_mounts(service).items():
            assert source.exists(), f"{name} mounts {source.relative_to(REPO)}, which is not in the repository"
            assert mode == "ro", f"{name}: mount {target} read-only"


def test_compose_accepts_the_file_with_both_profiles_on(tmp_path: Path) -> None:
    binary = shutil.which("docker-compose")
    if not binary:
        pytest.skip("docker-compose (Debian's 1.29) is not installed")
    env = tmp_path / "env"
    env.write_text(subprocess.run(["/bin/sh", str(REPO / "deploy" / "docker" / "gen-env.sh")], capture_output=True,
                                  text=True, check=True).stdout)
    result = subprocess.run([binary, "--project-directory", str(REPO), "-f", str(COMPOSE_FILE), "--env-file", str(env),
                             "--profile", "tracing", "--profile", "monitoring", "config", "-q"],
                            capture_output=True, text=True, check=False, cwd=REPO, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr


# ---- tracing: otel-collector ------------------------------------------------------------------------------

def test_the_collector_runs_the_repositorys_config(services: dict[str, Any]) -> None:
    service = services["otel-collector"]
    [config] = [arg.split("=", 1)[1] for arg in service["command"] if arg.startswith("--config=")]
    assert _bind_mounts(service)[config][0] == COLLECTOR_CONFIG


def test_every_pipeline_names_defined_components(collector: dict[str, Any]) -> None:
    pipelines = collector["service"]["pipelines"]
    assert set(pipelines) == {"traces"}
    for pipeline in pipelines.values():
        for kind in ("receivers", "processors", "exporters"):
            assert pipeline[kind], f"a pipeline with no {kind}"
            undefined = set(pipeline[kind]) - set(collector.get(kind) or {})
            assert not undefined, f"the pipeline uses {kind} {sorted(undefined)} that are not defined"
    assert set(collector["service"].get("extensions", [])) <= set(collector.get("extensions") or {})
    # The memory limiter works only as the first processor; batching is what the exporter needs.
    assert pipelines["traces"]["processors"][0] == "memory_limiter" and "batch" in pipelines["traces"]["processors"]


def test_the_collector_listens_where_the_services_are_told_to_send(collector: dict[str, Any]) -> None:
    protocols = collector["receivers"]["otlp"]["protocols"]
    assert _host_port(protocols["grpc"]["endpoint"]) == ("0.0.0.0", 4317)
    assert _host_port(protocols["http"]["endpoint"]) == ("0.0.0.0", 4318), "localhost is unreachable from others"
    # .env.example tells operators which endpoint turns export on with the profile.
    [endpoint] = set(re.findall(r"OTEL_EXPORTER_OTLP_ENDPOINT=(http://\S+)", ENV_EXAMPLE.read_text()))
    url = urlsplit(endpoint)
    assert (url.hostname, url.port) == ("otel-collector", 4318) and url.path in {"", "/"}


def test_the_collectors_exporter_is_the_jaeger_service(collector: dict[str, Any], services: dict[str, Any]) -> None:
    [exporter] = collector["service"]["pipelines"]["traces"]["exporters"]
    assert exporter.split("/")[0] == "otlp", "Jaeger takes OTLP/gRPC"
    config = collector["exporters"][exporter]
    host, port = _host_port(config["endpoint"])
    assert host in services and PROFILED.get(host) == "tracing", f"{host} is not the profile's compose service"
    assert host == "jaeger" and port == JAEGER_OTLP_GRPC
    assert config["tls"]["insecure"] is True  # Jaeger's receiver on the compose network has no TLS
    assert services["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    assert "jaeger" in _depends(services["otel-collector"])


def test_the_unprobed_collector_can_be_probed_from_outside(collector: dict[str, Any],
                                                           services: dict[str, Any]) -> None:
    """No health check runs inside its FROM-scratch image, so nothing may wait for it to be healthy."""
    assert "health_check" in collector["service"]["extensions"]
    assert _host_port(collector["extensions"]["health_check"]["endpoint"]) == ("0.0.0.0", 13133)
    assert not any("otel-collector" in _depends(s) for s in services.values())


def test_jaegers_health_check_asks_its_admin_port(services: dict[str, Any]) -> None:
    assert "http://127.0.0.1:14269/" in services["jaeger"]["healthcheck"]["test"]
    assert services["jaeger"]["ports"] == ["127.0.0.1:${JAEGER_UI_PORT:-16686}:16686"]


# ---- monitoring: prometheus and grafana ------------------------------------------------------------------

def test_prometheus_scrapes_the_compose_services(services: dict[str, Any]) -> None:
    service = services["prometheus"]
    source, _ = _bind_mounts(service)["/etc/prometheus"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in service["command"]
    config = load_yaml(source / "prometheus.yml")
    for rules in config["rule_files"]:
        assert (source / rules).exists(), f"rule file {rules} is not beside prometheus.yml"
    targets = {_host_port(t) for job in config["scrape_configs"] for static in job.get("static_configs", [])
               for t in static["targets"]}
    assert {(name, port) for name, port in SERVICES.items()} <= targets
    for host, _port in targets:
        assert host in services and not services[host].get("profiles"), f"{host} is not an always-on service"


def test_grafana_gets_the_provisioning_and_its_datasource_is_the_prometheus_service(
        services: dict[str, Any]) -> None:
    service = services["grafana"]
    mounts = {target: source for target, (source, _) in _bind_mounts(service).items()}
    grafana = REPO / "deploy" / "grafana"
    assert mounts["/etc/grafana/provisioning/datasources"] == grafana / "provisioning" / "datasources"
    assert mounts["/etc/grafana/provisioning/dashboards"] == grafana / "provisioning" / "dashboards"
    [provider] = load_yaml(grafana / "provisioning" / "dashboards" / "portal.yml")["providers"]
    assert mounts[provider["options"]["path"]] == grafana / "dashboards"
    home = Path(service["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert (mounts[str(home.parent)] / home.name).exists()
    [source] = load_yaml(grafana / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    url = urlsplit(source["url"])
    assert url.hostname in services and PROFILED[url.hostname] == "monitoring" and url.port == 9090
    assert "prometheus" in _depends(service)


def test_grafana_is_read_only_and_needs_no_password(services: dict[str, Any]) -> None:
    env = services["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true" and env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    # With neither the login form nor basic auth, the image's default admin/admin cannot sign in.
    assert env["GF_AUTH_DISABLE_LOGIN_FORM"] == "true" and env["GF_AUTH_BASIC_ENABLED"] == "false"
    assert not any("PASSWORD" in key for key in env)
