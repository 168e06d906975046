"""`dtm up`: the whole system on one machine, as real processes, with demo data.

Starts (after `dtm stack up` and the migrations) the three APIs, the two outbox relays and the
two consumers as child processes with their logs in `.stack/logs/`, loads the demo data through
the APIs, prints the URLs and how to get a token, and on Ctrl-C (or SIGTERM) stops the children
and then the stack it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from dtm_cli.services import CONSUMERS, PORTS, RELAYS


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


def _spawn(name: str, args: list[str], logs: Path) -> Child:
    log = logs / f"{name}.log"
    popen = subprocess.Popen(
        [sys.executable, "-m", "dtm_cli", *args],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    return Child(name, popen, log)


def _wait_ready(child: Child, url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.popen.poll() is not None:
            raise RuntimeError(f"{child.name} exited; see {child.log}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{child.name} not ready after {timeout:.0f}s; see {child.log}")


def _stop(children: list[Child]) -> None:
    for c in children:
        if c.popen.poll() is None:
            c.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for c in children:
        try:
            c.popen.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            c.popen.kill()


def run(*, demo: bool = True, keep_stack: bool = False) -> None:
    from dtm_cli import stack

    logs = stack.stack_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    children: list[Child] = []
    stopping = {"now": False}

    def on_signal(signum: int, _frame: object) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        for service in PORTS:
            children.append(_spawn(f"api-{service}", ["serve", service], logs))
        for service in RELAYS:
            children.append(_spawn(f"relay-{service}", ["relay", service], logs))
        for service in CONSUMERS:
            children.append(_spawn(f"consumer-{service}", ["consume", service], logs))
        for service, port in PORTS.items():
            child = next(c for c in children if c.name == f"api-{service}")
            _wait_ready(child, f"http://127.0.0.1:{port}/health/ready")
        print("[up] APIs ready; relays and consumers running (logs in .stack/logs/)", flush=True)
        if demo:
            _load_demo()
        _banner()
        while not stopping["now"]:
            for c in children:
                if c.popen.poll() is not None:
                    print(f"[up] {c.name} exited with {c.popen.returncode}; see {c.log}. Stopping.", flush=True)
                    stopping["now"] = True
            time.sleep(0.5)
    finally:
        print("\n[up] stopping services...", flush=True)
        _stop(children)
        if not keep_stack and not os.environ.get("DTM_KEEP_STACK"):
            stack.down()
        print("[up] stopped.", flush=True)


def _load_demo() -> None:
    from dtm_cli import demo
    from dtm_cli.main import mint_local_token

    def token_for(org: str) -> str:
        return mint_local_token(org, ["admin"])

    print("[up] loading demo data (IOM DTM round 64 communes, scaled down)...", flush=True)
    started = time.monotonic()
    try:
        counts = demo.load(f"http://127.0.0.1:{PORTS['registration']}", f"http://127.0.0.1:{PORTS['sites']}", token_for)
    except (RuntimeError, httpx.HTTPError) as exc:  # the system stays up; the operator can retry
        print(f"[up] demo data failed ({exc}); retry with `uv run dtm demo load`", flush=True)
        return
    print(f"[up] demo data: {counts} in {time.monotonic() - started:.1f}s", flush=True)


def _banner() -> None:
    print(
        f"""
dtm-platform is running.

  registration  http://127.0.0.1:{PORTS["registration"]}/docs   (OpenAPI: /openapi.json)
  sites         http://127.0.0.1:{PORTS["sites"]}/docs
  reporting     http://127.0.0.1:{PORTS["reporting"]}/docs   dashboard: http://127.0.0.1:{PORTS["reporting"]}/

Get a token (prints only the token):
  TOKEN=$(uv run dtm token --org DNDS --scope households:read --scope indicators:read --scope sites:read)
Call the API:
  curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:{PORTS["reporting"]}/v1/indicators/summary

Ctrl-C stops everything.
""",
        flush=True,
    )
