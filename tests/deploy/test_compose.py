"""docker-compose.yml: valid Compose, the same system as `make up`, and every `dtm` command it
runs exists in the CLI (a command another part of the project has not added yet fails here)."""

from __future__ import annotations

import functools
import json
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.conftest import ROOT, SERVICES, check_dtm_command, is_dtm_image, setting_env_names

API_PORTS = {"registration": 8001, "sites": 8002, "reporting": 8003}
# DTM_* variables read by the CLI itself rather than by ServiceSettings.
CLI_ENV = {
    "DTM_DB_PASSWORD_REGISTRATION",
    "DTM_DB_PASSWORD_SITES",
    "DTM_DB_PASSWORD_REPORTING",
    "DTM_HEALTHCHECK_URL",
    "DTM_HOME",
    "DTM_KEYS_DIR",
    "DTM_STACK_DIR",
}


@functools.cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def _image(svc: dict[str, Any]) -> str:
    """The image, with a `${DTM_IMAGE:-default}` interpolation resolved to its default."""
    image = str(svc.get("image", ""))
    return image.replace("${DTM_IMAGE:-", "").rstrip("}")


def _dtm_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in _services().items() if is_dtm_image(_image(s))}


def test_matches_the_compose_specification() -> None:
    schema = json.loads((ROOT / "tests" / "deploy" / "schemas" / "compose-spec.json").read_text())
    # the vendored schema predates the top-level project `name` (Compose 2.3+)
    schema["properties"]["name"] = {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$"}
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_every_dtm_command_exists() -> None:
    services = _dtm_services()
    assert len(services) >= 10
    failures = []
    for name, svc in services.items():
        command = svc.get("command")
        assert isinstance(command, list), f"{name}: use the exec form, a list of arguments to `dtm`"
        error = check_dtm_command([str(a) for a in command])
        if error:
            failures.append(f"{name}: {error}")
    assert not failures, "\n".join(failures)


def test_same_system_as_make_up() -> None:
    services = _services()
    commands = {tuple(s["command"]) for s in _dtm_services().values()}
    for svc in SERVICES:
        assert ("serve", svc, "--host", "0.0.0.0", "--port", str(API_PORTS[svc])) in commands
    for svc in ("registration", "sites"):
        assert ("relay", svc) in commands
    for svc in ("registration", "reporting"):
        assert ("consume", svc) in commands
    assert {("topics", "create"), ("db", "provision")} <= commands
    assert any(c[0] == "migrate" for c in commands)
    assert services["kafka"]["image"] == "apache/kafka:4.1.1"
    assert services["postgres"]["image"].split(":")[0] == "postgres"
    kafka_env = services["kafka"]["environment"]
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller", "KRaft, single node"
    assert str(kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]) == "false"


def test_dependencies_and_healthchecks() -> None:
    services = _services()
    for name, svc in services.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            condition = cond["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy: it needs a healthcheck"
            if condition == "service_completed_successfully":
                assert services[dep].get("restart", "no") == "no", f"{dep} is a one-shot job"
    for name, svc in _dtm_services().items():
        cmd = svc["command"]
        if cmd[0] in ("serve", "relay", "consume"):
            deps = svc["depends_on"]
            assert deps["migrate"]["condition"] == "service_completed_successfully", name
            assert deps["topics"]["condition"] == "service_completed_successfully", name
        if cmd[0] == "serve":
            assert "healthcheck" in svc and "/health/ready" in " ".join(svc["healthcheck"]["test"]), name
            assert "jwt-public-key" in svc.get("secrets", []), f"{name}: the APIs need the JWT public key"
            assert svc["environment"]["DTM_JWT_PUBLIC_KEY_FILE"] == "/run/secrets/jwt-public-key"
    assert services["migrate"]["depends_on"]["db-provision"]["condition"] == "service_completed_successfully"
    assert services["db-provision"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_named_volumes_and_secrets_declared() -> None:
    data = compose()
    declared = set(data.get("volumes") or {})
    for name, svc in _services().items():
        for vol in svc.get("volumes", []):
            source = vol.split(":", 1)[0] if isinstance(vol, str) else vol["source"]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: named volume {source} is not declared"
        for secret in svc.get("secrets", []):
            assert secret in (data.get("secrets") or {}), f"{name}: secret {secret} is not declared"
    assert {"pgdata", "kafkadata"} <= declared


def test_environment_names_real_settings() -> None:
    fields = setting_env_names()
    failures = []
    for name, svc in _dtm_services().items():
        env = svc.get("environment") or {}
        for key in env:
            if key.startswith("DTM_") and key not in fields | CLI_ENV:
                failures.append(f"{name}: {key} is read by nothing")
        cmd = svc["command"]
        if cmd[0] in ("serve", "relay", "consume"):
            url = env["DTM_DATABASE_URL"]
            assert url.startswith(f"postgresql://{cmd[1]}:"), f"{name}: connects as its own role"
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("svc", ["registration-api", "sites-api", "reporting-api"])
def test_apis_hardened(svc: str) -> None:
    s = _services()[svc]
    assert s["read_only"] is True
    assert "/tmp" in s["tmpfs"]
    assert s["cap_drop"] == ["ALL"]
