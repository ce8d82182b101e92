"""Helpers of the offline operator checks (tests/unit/ops): the repository's files read as data.

Settings and metric names are taken from the code itself (ast), so a setting or metric added to a
service without being wired into compose, Kubernetes, .env.example or the alerts makes a test fail.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
SERVICES = {"profile": 8101, "mfa": 8102, "notifier": 8103}
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
K8S_BASE = REPO / "deploy" / "k8s" / "base"
NGINX_DIR = REPO / "deploy" / "nginx"  # the gateway: shared routes, one main file per deployment
KUBERNETES_VERSION = "1.31.0"  # the Kubernetes API the manifests are validated against

_SETTING_NAME = re.compile(r"^[A-Z][A-Z0-9_]{2,}$")
_ENV_READERS = {"str", "int", "bool", "secret", "choice"}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_yaml_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _is_env(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == "env"


def _is_os_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ"
            and isinstance(node.value, ast.Name) and node.value.id == "os")


def settings_read_in(source: str) -> dict[str, bool]:
    """Settings a module reads, name -> required (no default), from the shapes the code uses:
    `env.str/int/bool/secret/choice("NAME", ...)`, helpers called as `f(env, "NAME", default)`,
    `os.environ["NAME"]`, `os.environ.get("NAME")` and `os.getenv("NAME")`."""
    found: dict[str, bool] = {}

    def add(name: str, required: bool) -> None:
        if _SETTING_NAME.match(name):
            found[name] = found.get(name, False) or required

    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Subscript) and _is_os_environ(node.value)
                and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
            add(node.slice.value, True)
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        literal_args = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if isinstance(func, ast.Attribute) and _is_env(func.value) and func.attr in _ENV_READERS and literal_args:
            has_default = len(node.args) > 1 or any(k.arg == "default" for k in node.keywords)
            add(literal_args[0], func.attr == "secret" or (func.attr in {"str", "int"} and not has_default))
        elif any(_is_env(a) for a in node.args) and literal_args:
            add(literal_args[0], False)  # a helper around Env; it passes a default
        elif literal_args and isinstance(func, ast.Attribute) and (
                (func.attr == "get" and _is_os_environ(func.value))
                or (func.attr == "getenv" and isinstance(func.value, ast.Name) and func.value.id == "os")):
            add(literal_args[0], False)
    return found


def service_settings(service: str) -> dict[str, bool]:
    """Every setting the service's config reads (its config.py plus CommonSettings), name -> required."""
    config = REPO / "services" / service / f"{service}_service" / "config.py"
    source = config.read_text()
    settings = settings_read_in(source)
    if "CommonSettings" in source:
        settings.update(settings_read_in((REPO / "shared" / "portal_shared" / "config.py").read_text()))
    return settings


def bootstrap_settings() -> set[str]:
    """What `python -m portal_shared.db_bootstrap` reads: literal names plus one password per schema."""
    from portal_shared.db_bootstrap import SERVICE_SCHEMAS

    names = set(settings_read_in((REPO / "shared" / "portal_shared" / "db_bootstrap.py").read_text()))
    return names | {f"{schema.upper()}_DB_PASSWORD" for schema in SERVICE_SCHEMAS}


def documented_in_env_example() -> set[str]:
    """Names that .env.example documents, as `NAME=` or (set by compose) `# NAME=`."""
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), flags=re.MULTILINE))


def env_example_values() -> dict[str, str]:
    return dict(re.findall(r"^([A-Z][A-Z0-9_]+)=(.*)$", ENV_EXAMPLE.read_text(), flags=re.MULTILINE))


_METRIC_TYPES = {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum"}


def defined_metrics() -> set[str]:
    """Series names the Python code exposes (prometheus_client naming: counters end in _total,
    histograms add _bucket/_sum/_count), from every module of the shared library and the services."""
    names: set[str] = set()
    files = list((REPO / "shared" / "portal_shared").rglob("*.py"))
    files += list((REPO / "services").glob("*/*_service/**/*.py"))
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            kind = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            first = node.args[0]
            if kind not in _METRIC_TYPES or not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                continue
            name = first.value
            if kind == "Counter":
                base = name.removesuffix("_total")
                names |= {base + "_total", base + "_created"}
            elif kind == "Histogram":
                names |= {name + "_bucket", name + "_sum", name + "_count"}
            elif kind == "Summary":
                names |= {name, name + "_sum", name + "_count"}
            elif kind == "Info":
                names.add(name + "_info")
            else:
                names.add(name)
    return names


# ---- a small Dockerfile parser --------------------------------------------------------------------------

def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: comments and parser directives dropped, continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if pending and line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    if pending.strip():
        raise ValueError("the Dockerfile ends inside a continued line")
    return instructions


def dockerfile_stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The build stages, each starting with its FROM (ARGs before the first FROM are left out)."""
    stages: list[list[tuple[str, str]]] = []
    for instruction in instructions:
        if instruction[0] == "FROM":
            stages.append([instruction])
        elif stages:
            stages[-1].append(instruction)
    return stages


_SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE|CREDENTIAL|_KEYS?$|^KEY$|DATABASE_URL|AMQP_URL)", re.IGNORECASE)
_BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|clang|make|build-essential|cargo|rustc|libpq-dev|python3-dev)\b")


def _declared_names(instruction: str, args: str) -> list[str]:
    if instruction == "ARG":
        return [args.split("=", 1)[0].strip()]
    names = re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", args)
    if not names and args:  # legacy `ENV NAME value`
        names = [args.split()[0]]
    return names


def dockerfile_problems(text: str, *, python_service: bool) -> list[str]:
    """What is wrong with a Dockerfile by our rules; empty when it follows them all."""
    problems: list[str] = []
    instructions = parse_dockerfile(text)
    if not instructions:
        return ["empty Dockerfile"]
    leading = [i for i, _ in instructions[: next((n for n, (i, _) in enumerate(instructions) if i != "ARG"),
                                                    len(instructions))]]
    first_other = instructions[len(leading)][0] if len(leading) < len(instructions) else None
    if first_other != "FROM":
        problems.append(f"the first instruction (after ARGs) is {first_other}, not FROM")
    stages = dockerfile_stages(instructions)
    if not stages:
        return [*problems, "no FROM"]
    final = stages[-1]
    users = [args for i, args in final if i == "USER"]
    if not users:
        problems.append("the final stage sets no USER (it would run as root)")
    elif users[-1].split(":")[0].strip() in {"root", "0"}:
        problems.append(f"the final stage runs as {users[-1]!r}")
    healthchecks = [args for i, args in final if i == "HEALTHCHECK"]
    if not healthchecks or healthchecks[-1].strip().upper() == "NONE":
        problems.append("the final stage has no HEALTHCHECK")
    for stage in stages:
        for instruction, args in stage:
            if instruction in {"ENV", "ARG"}:
                for name in _declared_names(instruction, args):
                    if _SECRET_NAME.search(name):
                        problems.append(f"{instruction} {name}: a secret-looking setting is baked into the image")
            if instruction in {"COPY", "ADD"} and re.search(r"(^|\s|/)\.env(\s|$)", args):
                problems.append(f"{instruction} {args}: .env files never go into an image")
    final_runs = " ".join(args for i, args in final if i == "RUN")
    if _BUILD_TOOLS.search(final_runs):
        problems.append(f"build tools installed in the final stage: {_BUILD_TOOLS.search(final_runs).group(0)}")
    if python_service:
        runs = [args for stage in stages for i, args in stage if i == "RUN"]
        syncs = [r for r in runs if re.search(r"\buv sync\b", r)]
        if not syncs or not all("--frozen" in r for r in syncs):
            problems.append("dependencies must be installed with `uv sync --frozen` (the lock file, nothing resolved)")
        if any(re.search(r"\bpip3? install\b", r) for r in runs):
            problems.append("pip install bypasses uv.lock")
        if syncs and not all("--no-dev" in r for r in syncs):
            problems.append("uv sync without --no-dev puts test tools into the image")
        if len(stages) < 2:
            problems.append("a single stage: the builder's tools would ship in the image")
        final_from = final[0][1].split()[0]
        if not re.match(r"python:3\.11[.\d]*-slim", final_from):
            problems.append(f"the final stage is based on {final_from}, not a slim Python 3.11")
        if any(i == "COPY" and "astral-sh/uv" in args for i, args in final) or re.search(r"\buv\b", final_runs):
            problems.append("uv is in the final stage")
        if not any("/health/ready" in h for h in healthchecks):
            problems.append("the HEALTHCHECK does not ask /health/ready")
    return problems
