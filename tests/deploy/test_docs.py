"""docs/operations.md covers what the issue asks for, every setting and every Secret."""

from __future__ import annotations

import re

from tests.deploy.conftest import ROOT, setting_env_names
from tests.deploy.test_k8s import KNOWN_SECRETS

DOC = ROOT / "docs" / "operations.md"


def test_every_setting_is_documented() -> None:
    text = DOC.read_text()
    missing = sorted(name for name in setting_env_names() if f"`{name}`" not in text)
    assert not missing, f"add these settings to docs/operations.md (Settings): {missing}"


def test_every_secret_is_documented() -> None:
    text = DOC.read_text()
    assert not [s for s in KNOWN_SECRETS if f"`{s}`" not in text]


def test_sections() -> None:
    headings = {h.strip().lower() for h in re.findall(r"^##+ (.+)$", DOC.read_text(), flags=re.M)}
    for needed in (
        "docker compose",
        "kubernetes",
        "settings",
        "scaling",
        "key rotation",
        "rebuilding read models",
        "dead letters",
        "backup and restore",
        "upgrades and migrations",
        "metrics, logs and alerts",
        "security scan",
    ):
        assert needed in headings, f"docs/operations.md lacks a section on {needed}"
