"""What the image's build stage does, without Docker: install the build context (exactly the files
.dockerignore lets through) with `uv sync --frozen --no-dev --no-editable` into a fresh virtual
environment, then check that the runtime needs nothing else: the `dtm` entry point works outside
the source tree, every service's app and workers import without the dev dependencies, and the
package data (migrations, reference data) is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import ROOT, SERVICES


def _context_entries() -> list[str]:
    rules = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()]
    return [r[1:].rstrip("/") for r in rules if r.startswith("!")]


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    if not Path(uv).exists():
        pytest.skip("uv is not installed")
    base = tmp_path_factory.mktemp("image")
    context, venv = base / "src", base / "venv"
    context.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache", "*.egg-info")
    for entry in _context_entries():
        src = ROOT / entry
        if src.is_dir():
            shutil.copytree(src, context / entry, ignore=ignore)
        else:
            shutil.copy2(src, context / entry)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env |= {"UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON_DOWNLOADS": "never", "UV_PYTHON": sys.executable}
    proc = subprocess.run(
        [uv, "sync", "--frozen", "--no-dev", "--no-editable", "--quiet"],
        cwd=context,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    shutil.rmtree(context)  # the runtime stage has no source tree either
    return venv


def _run(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH", "DTM_"))}
    return subprocess.run(
        list(args),
        cwd="/",
        env=env | {"DTM_LOG_JSON": "true"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_entry_point_runs(image_venv: Path) -> None:
    proc = _run(image_venv, str(image_venv / "bin" / "dtm"), "--help")
    assert proc.returncode == 0, proc.stderr
    for command in ("serve", "relay", "consume", "migrate", "db", "topics"):
        assert command in proc.stdout


def test_services_import_without_dev_dependencies(image_venv: Path) -> None:
    modules = [f"{s}.{m}" for s in SERVICES for m in ("main", "workers")] + ["dtm_cli.main", "dtm_cli.services"]
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    proc = _run(image_venv, str(image_venv / "bin" / "python"), "-c", code, *modules)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_package_data_installed(image_venv: Path) -> None:
    code = (
        "import importlib, pathlib, sys\n"
        "for s in sys.argv[1:]:\n"
        "    d = pathlib.Path(importlib.import_module(s).__file__).parent / 'migrations'\n"
        "    assert (d / 'env.py').exists() and (d / 'script.py.mako').exists(), d\n"
        "    assert list((d / 'versions').glob('*.py')), f'{d}/versions is empty'\n"
        "import dtm_shared\n"
        "data = pathlib.Path(dtm_shared.__file__).parent / 'data'\n"
        "assert list(data.glob('*.csv')), data\n"
        "assert 'site-packages' in str(data), 'installed as a wheel, not from the source tree'\n"
    )
    proc = _run(image_venv, str(image_venv / "bin" / "python"), "-c", code, *SERVICES)
    assert proc.returncode == 0, proc.stderr[-3000:]
