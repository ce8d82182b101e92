"""docker-compose.yml, .env.example and .dockerignore, checked offline (no Docker engine needed)."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opscheck import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    REPO,
    SERVICES,
    bootstrap_settings,
    documented_in_env_example,
    env_example_values,
    load_yaml,
    service_settings,
)

ONE_SHOTS = {"db-init", "seed"}
# Long-running containers Docker cannot probe from inside: the collector's image is FROM scratch (no shell,
# no HTTP client). test_ops_compose_profiles.py checks that nothing waits for it and it can be probed outside.
UNPROBEABLE = {"otel-collector"}
GEN_ENV = REPO / "deploy" / "docker" / "gen-env.sh"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)  # PyYAML resolves the `<<: *anchor` merges as compose does


@pytest.fixture(scope="module")
def generated_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete .env as an operator gets it from deploy/docker/gen-env.sh."""
    target = tmp_path_factory.mktemp("compose") / "env"
    result = subprocess.run(["/bin/sh", str(GEN_ENV)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    target.write_text(result.stdout)
    return target


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _docker_compose() -> str:
    binary = shutil.which("docker-compose")
    if not binary:
        pytest.skip("docker-compose (Debian's 1.29) is not installed: `apt-get install docker-compose`; "
                    "the compose-spec schema check still ran")
    return binary


def _clean_env() -> dict[str, str]:
    # Only PATH: settings in the test runner's environment must not fill gaps in the env file.
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}


# ---- the file is valid -----------------------------------------------------------------------------------

def test_compose_file_matches_the_compose_spec_schema() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_compose_config_accepts_the_file(generated_env: Path) -> None:
    binary = _docker_compose()
    result = subprocess.run([binary, "--project-directory", str(REPO), "-f", str(COMPOSE_FILE),
                             "--env-file", str(generated_env), "config", "-q"],
                            capture_output=True, text=True, check=False, env=_clean_env(), cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_compose_refuses_to_run_without_the_secrets(tmp_path: Path) -> None:
    """The example's secrets are empty: compose must stop naming one, not start with a blank secret."""
    binary = _docker_compose()
    result = subprocess.run([binary, "--project-directory", str(REPO), "-f", str(COMPOSE_FILE),
                             "--env-file", str(ENV_EXAMPLE), "config", "-q"],
                            capture_output=True, text=True, check=False, env=_clean_env(), cwd=REPO)
    assert result.returncode != 0
    assert re.search(r"set [A-Z_]+ in \.env", result.stderr), result.stderr


# ---- every setting the code reads is set, per service, and documented --------------------------------------

@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_setting_the_service_reads_is_set_for_it(compose: dict[str, Any], service: str) -> None:
    env = _environment(compose["services"][service])
    missing = sorted(set(service_settings(service)) - set(env))
    assert not missing, f"{service} reads {missing} but docker-compose.yml does not set them for it"
    assert env["HTTP_PORT"] == str(SERVICES[service])
    assert env["HTTP_HOST"] == "0.0.0.0"


def test_the_seed_job_runs_with_the_profile_settings(compose: dict[str, Any]) -> None:
    env = _environment(compose["services"]["seed"])
    missing = sorted((set(service_settings("profile")) | {"DEMO_PASSWORD", "SEED_DEMO"}) - set(env))
    assert not missing, f"seed lacks {missing}"


def test_db_init_gets_what_the_bootstrap_reads(compose: dict[str, Any]) -> None:
    env = _environment(compose["services"]["db-init"])
    missing = sorted(bootstrap_settings() - set(env))
    assert not missing, f"db-init lacks {missing}"
    assert compose["services"]["db-init"]["entrypoint"][-1] == "portal_shared.db_bootstrap"


def test_every_setting_is_documented_in_env_example(compose: dict[str, Any]) -> None:
    documented = documented_in_env_example()
    read = set(bootstrap_settings()) | {"DEMO_PASSWORD", "SEED_DEMO"}
    for service in SERVICES:
        read |= set(service_settings(service))
    assert not sorted(read - documented), f".env.example does not document {sorted(read - documented)}"
    # Every variable the compose file takes from .env is a real `NAME=` line of the example.
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE_FILE.read_text()))
    lines = set(env_example_values())
    assert not sorted(interpolated - lines), f"not in .env.example: {sorted(interpolated - lines)}"


def test_secrets_have_no_default_and_reach_only_the_services_that_need_them(compose: dict[str, Any]) -> None:
    text = COMPOSE_FILE.read_text()
    secrets = {"POSTGRES_PASSWORD", "PROFILE_DB_PASSWORD", "MFA_DB_PASSWORD", "NOTIFIER_DB_PASSWORD",
               "RABBITMQ_PASSWORD", "SERVICE_AUTH_KEY", "MFA_ENCRYPTION_KEYS", "RECOVERY_CODE_KEY"}
    for name in secrets:
        uses = re.findall(r"\$\{" + name + r"(:?[-?][^}]*)?\}", text)
        assert uses and all(u.startswith(":?") for u in uses), f"{name} must be required (${{{name}:?...}})"
        assert env_example_values()[name] == "", f".env.example must not carry a value for {name}"
    allowed = {
        "POSTGRES_PASSWORD": {"postgres", "db-init"},
        "ADMIN_DATABASE_URL": {"db-init"},
        "PROFILE_DB_PASSWORD": {"profile", "seed", "db-init"},
        "MFA_DB_PASSWORD": {"mfa", "db-init"},
        "NOTIFIER_DB_PASSWORD": {"notifier", "db-init"},
        "MFA_ENCRYPTION_KEYS": {"mfa"},
        "RECOVERY_CODE_KEY": {"mfa"},
        "SERVICE_AUTH_KEY": {*SERVICES, "seed"},
        "DEMO_PASSWORD": {"seed"},
    }
    for name, service in compose["services"].items():
        flat = " ".join(f"{k}={v}" for k, v in _environment(service).items())
        for secret, holders in allowed.items():
            if name not in holders:
                assert secret not in flat, f"{name} is given {secret}"


# ---- start order, health, storage ------------------------------------------------------------------------

def test_every_long_running_container_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name in ONE_SHOTS:
            assert service.get("restart") == "no", f"one-shot {name} must not restart"
            continue
        assert service.get("restart") in {"unless-stopped", "always"}, name
        check = service.get("healthcheck") or {}
        if name in UNPROBEABLE:
            assert check == {"disable": True}, f"{name}: say so explicitly (healthcheck: disable: true)"
            continue
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"


def test_dependencies_wait_for_health_or_completion(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions, not a list"
        for dependency, spec in depends.items():
            expected = "service_completed_successfully" if dependency in ONE_SHOTS else "service_healthy"
            assert spec.get("condition") == expected, f"{name} -> {dependency}: {spec}"
    for service in SERVICES:
        assert {"db-init", "postgres", "rabbitmq"} <= set(services[service]["depends_on"]), service
    assert set(SERVICES) <= set(services["gateway"]["depends_on"])
    assert "profile" in services["seed"]["depends_on"]
    assert "postgres" in services["db-init"]["depends_on"]
    assert "mailpit" in services["notifier"]["depends_on"]


def test_state_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    volumes = set(compose.get("volumes") or {})
    expected = {"postgres": "/var/lib/postgresql/data", "rabbitmq": "/var/lib/rabbitmq"}
    for service, path in expected.items():
        mounts = compose["services"][service].get("volumes") or []
        sources = {m.split(":")[0] for m in mounts if m.split(":")[1] == path}
        assert sources and sources <= volumes, f"{service}:{path} must be a named volume"
    assert compose["services"]["rabbitmq"].get("hostname"), "RabbitMQ needs a fixed node name for its volume"


def test_images_are_pinned_and_match_the_testcontainers_path(compose: dict[str, Any]) -> None:
    from tests.support.backends import POSTGRES_IMAGE, RABBITMQ_IMAGE

    services = compose["services"]
    assert services["postgres"]["image"] == POSTGRES_IMAGE == "postgres:16-alpine"
    assert services["rabbitmq"]["image"] == RABBITMQ_IMAGE == "rabbitmq:3.13-management-alpine"
    for name, service in services.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin {image}"
    assert services["mailpit"]["image"].startswith("axllent/mailpit:")


def test_services_are_built_from_the_one_parameterised_dockerfile(compose: dict[str, Any]) -> None:
    for name in [*SERVICES, "db-init", "seed"]:
        build = compose["services"][name]["build"]
        assert build["dockerfile"] == "deploy/docker/Dockerfile"
        expected = "profile" if name in ONE_SHOTS else name
        assert build["args"]["SERVICE"] == expected
        assert (REPO / "services" / expected / f"{expected}_service" / "__main__.py").exists()
    assert compose["services"]["gateway"]["build"]["dockerfile"] == "deploy/docker/Dockerfile.gateway"


def test_the_gateway_is_published_on_gateway_port(compose: dict[str, Any]) -> None:
    ports = compose["services"]["gateway"]["ports"]
    assert "${GATEWAY_PORT:-8080}:8080" in ports
    for name, service in compose["services"].items():
        for port in service.get("ports") or []:
            if name != "gateway":
                assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


# ---- the seed switch and the generated .env -----------------------------------------------------------------

@pytest.mark.parametrize(("seed_demo", "seeds"), [("1", True), ("0", False), ("", False)])
def test_seed_runs_seed_demo_only_when_SEED_DEMO_is_1(compose: dict[str, Any], tmp_path: Path,
                                                       seed_demo: str, seeds: bool) -> None:
    service = compose["services"]["seed"]
    script = service["command"][0].replace("$$", "$")  # compose's escape for a literal $
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text('#!/bin/sh\necho "python $*" > "$MARK"\n')
    (fake / "python").chmod(0o755)
    mark = tmp_path / "called"
    result = subprocess.run([*service["entrypoint"], script], capture_output=True, text=True, check=False,
                            env={"PATH": f"{fake}:/usr/bin:/bin", "SEED_DEMO": seed_demo, "MARK": str(mark)})
    assert result.returncode == 0, result.stderr
    if seeds:
        assert mark.read_text().strip() == "python -m profile_service seed-demo"
    else:
        assert not mark.exists()
        assert "SEED_DEMO is not 1" in result.stdout


def test_gen_env_fills_every_required_secret_with_url_safe_values(compose: dict[str, Any],
                                                                 generated_env: Path) -> None:
    values = dict(re.findall(r"^([A-Z][A-Z0-9_]+)=(.*)$", generated_env.read_text(), flags=re.MULTILINE))
    required = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", COMPOSE_FILE.read_text()))
    secrets = {n for n in required if re.search(r"PASSWORD|KEY", n)} - {"MFA_ENCRYPTION_KEYS"}
    assert secrets
    for name in required:
        assert values.get(name), f"gen-env.sh leaves {name} empty"
        if name in secrets:
            assert re.fullmatch(r"[A-Za-z0-9_-]{16,}", values[name]), f"{name} is not URL-safe: {values[name]!r}"
    kid, _, key = values["MFA_ENCRYPTION_KEYS"].partition(":")
    assert kid and len(base64.b64decode(key)) == 32
    again = subprocess.run(["/bin/sh", str(GEN_ENV)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^SERVICE_AUTH_KEY=(.*)$", again, re.M).group(1) != values["SERVICE_AUTH_KEY"]
    # Everything else is the example, line for line.
    assert len(again.splitlines()) == len(ENV_EXAMPLE.read_text().splitlines())


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_build_context() -> None:
    patterns = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    for needed in (".env", "**/.git", "**/.venv", "var/", "**/__pycache__"):
        assert needed in patterns, f".dockerignore should exclude {needed}"
    assert not any(p.startswith("!") and ".env" in p for p in patterns)
