"""The reporting dashboard in headless Chromium: the page served by a real `dtm serve reporting`
process renders its charts from the read models; the screenshot goes to artifacts/dashboard.png."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, free_port
from tests.integration.reporting.conftest import consume_all, publish, record, reporting_env

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACT = ROOT / "artifacts" / "dashboard.png"


def ensure_chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "chromium"]
        # A fresh machine may have no package lists yet: install, else update and install again.
        for step in (install, ["apt-get", "update", "-qq"], install):
            if CHROMIUM.exists():
                break
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                subprocess.run(step, check=True, timeout=600, capture_output=True, env=env)
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed at /usr/bin/chromium and `apt-get install -y chromium` failed")
    return CHROMIUM


@contextlib.contextmanager
def serve_reporting(env: dict[str, str]):
    port = free_port()
    log = ROOT / "artifacts" / "dashboard-server.log"
    log.parent.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dtm_cli", "serve", "reporting", "--port", str(port)],
        env={**os.environ, **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(log.read_text()[-2000:])
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


async def test_dashboard_renders_charts_in_chromium(migrated) -> None:
    from playwright.async_api import async_playwright

    from tests.integration.reporting.test_indicators import build_world

    chromium = ensure_chromium()
    async with reporting_env(migrated, "db" + uuid.uuid4().hex[:6]) as rep:
        w, _ = build_world()
        await publish(rep, [record(p) for p in w.events])
        await consume_all(rep)
        env = {
            "DTM_DATABASE_URL": rep.settings.database_url,
            "DTM_KAFKA_BOOTSTRAP": rep.stack.kafka_bootstrap,
            "DTM_TOPIC_PREFIX": rep.prefix,
            "DTM_JWT_PUBLIC_KEY_FILE": str(rep.stack.public_key_file),
            "DTM_LOG_LEVEL": "WARNING",
        }
        with serve_reporting(env) as base:
            async with async_playwright() as p:
                browser = await p.chromium.launch(
                    executable_path=str(chromium),
                    args=[
                        "--headless",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-background-networking",
                        "--disable-component-update",
                        "--disable-sync",
                        "--no-first-run",
                    ],
                )
                try:
                    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
                    requested: list[str] = []
                    page.on("request", lambda req: requested.append(req.url))
                    response = await page.goto(f"{base}/?as_of=2025-12-31", wait_until="load")
                    assert response is not None and response.status == 200
                    await page.wait_for_selector("svg.chart.bars rect.bar")
                    assert await page.locator("#regions svg rect.bar").count() >= 2
                    assert await page.locator("#trend svg polyline.series").count() == 3
                    assert await page.locator("#reasons svg rect.bar").count() >= 2
                    assert await page.locator("#gaps table tbody tr").count() >= 1
                    box = await page.locator("#regions svg").bounding_box()
                    assert box is not None and box["width"] > 300 and box["height"] > 40
                    text = await page.inner_text("body")
                    assert "IOM" in text and "COD-AB" in text and "Bamako" in text
                    assert all(u.startswith(base) for u in requested), requested
                    ARTIFACT.parent.mkdir(exist_ok=True)
                    await page.screenshot(path=str(ARTIFACT), full_page=True)
                finally:
                    await browser.close()
    assert ARTIFACT.stat().st_size > 10_000
