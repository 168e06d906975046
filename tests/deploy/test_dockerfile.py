"""Dockerfile: hadolint finds nothing, and the image keeps its promises (uv.lock only, non-root,
the `dtm` entry point, a HEALTHCHECK, a build context without local state)."""

from __future__ import annotations

import json
import re
import subprocess

from tests.deploy.conftest import ROOT, tool

DOCKERFILE = ROOT / "Dockerfile"


def test_hadolint_finds_nothing() -> None:
    proc = subprocess.run(
        [tool("hadolint"), "--format", "json", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(proc.stdout or "[]")
    assert not findings, "\n".join(f"line {f['line']}: {f['code']} {f['message']}" for f in findings)
    assert proc.returncode == 0, proc.stderr


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_image_contract() -> None:
    ins = _instructions()
    froms = [rest for word, rest in ins if word == "FROM"]
    assert len(froms) >= 2, "multi-stage build"
    runs = " ".join(rest for word, rest in ins if word == "RUN")
    assert "uv sync --frozen --no-dev" in runs, "dependencies come from uv.lock only"
    final = ins[max(i for i, (w, _) in enumerate(ins) if w == "FROM") :]
    users = [rest for word, rest in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the runtime stage runs as a non-root user"
    assert users[-1].split(":")[0].isdigit(), "a numeric uid, so Kubernetes runAsNonRoot can verify it"
    assert ("ENTRYPOINT", '["dtm"]') in final
    assert any(word == "HEALTHCHECK" for word, _ in final)


def test_dockerignore_keeps_local_state_out() -> None:
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [ln for ln in lines if ln and not ln.startswith("#")]
    assert rules[0] == "**", "allow-list: ignore everything, then re-include what the build needs"
    included = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    assert included == {"pyproject.toml", "uv.lock", "README.md", "shared", "services", "cli"}
    # everything the Dockerfile copies is in the context
    for word, rest in _instructions():
        if word == "COPY" and "--from" not in rest:
            for src in rest.split()[:-1]:
                assert src.rstrip("/") in included, f"COPY {src} is excluded by .dockerignore"
