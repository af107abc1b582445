"""Service mode as real processes on loopback: embedder, gateway and workers, over private Redis and
PostgreSQL servers started by hack/. Fault tests kill any of them with SIGKILL and start them again."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.servers import hack

INTERNAL_TOKEN = "test-internal-token"
EMBEDDER_TOKEN = "test-embedder-token"
"""Every embedder the tests start requires it, and the gateway and workers send it, as in the chart."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    """One `semantik ...` subprocess with its output in a log file (shown when a test fails)."""

    name: str
    args: list[str]
    env: Mapping[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    module: str = "semantik.cli"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args],
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill9(self) -> None:
        if self.running:
            assert self.popen is not None
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(timeout=30)

    def stop(self) -> None:
        if self.running:
            assert self.popen is not None
            self.popen.terminate()
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill9()

    def wait(self, timeout: float) -> int:
        assert self.popen is not None
        return self.popen.wait(timeout=timeout)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


_JOB_EVENT = re.compile(r"msg=\s*[\d.]+s ([→←]) (\S+?):(?:scan|process_batch|finalize)\b")


def jobs_in_flight(worker: Process) -> list[str]:
    """Jobs a worker's log shows started and not finished: what a SIGKILL cut off."""
    running: list[str] = []
    for arrow, job_id in _JOB_EVENT.findall(worker.log_path.read_text(errors="replace")):
        if arrow == "→":
            running.append(job_id)
        elif job_id in running:
            running.remove(job_id)
    return [job_id.split(":", 1)[1] for job_id in running]


def wait_until_ready(url: str, process: Process, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.running:
            raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{process.name} not ready at {url} in {timeout:.0f}s:\n{process.log_tail()}")


@dataclass
class Stack:
    """Embedder + gateway + workers. Redis and PostgreSQL come from the caller (hack/ servers)."""

    workdir: Path
    redis_url: str
    database_url: str
    embedder_port: int
    job_timeout: int = 15
    gateway_port: int = field(default_factory=free_port)
    embedder: Process | None = None
    gateway: Process | None = None
    workers: list[Process] = field(default_factory=list)
    gateway_env: dict[str, str] = field(default_factory=dict)
    """Settings of the gateway on top of the common ones."""

    @property
    def embedder_url(self) -> str:
        return f"http://127.0.0.1:{self.embedder_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def common_env(self) -> dict[str, str]:
        return {
            "SEMANTIK_REDIS_URL": self.redis_url,
            "SEMANTIK_INTERNAL_TOKEN": INTERNAL_TOKEN,
            "SEMANTIK_EMBEDDER_TOKEN": EMBEDDER_TOKEN,
            "SEMANTIK_EMBEDDER_URL": self.embedder_url,
            "SEMANTIK_GATEWAY_URL": self.gateway_url,
            # The gateway and the workers index only under their source roots; every test folder is a temp one.
            "SEMANTIK_SOURCE_ROOTS": tempfile.gettempdir(),
            "HF_HUB_OFFLINE": "1",
        }

    def start_embedder(self) -> None:
        self.embedder = Process(
            "embedder",
            ["embedder", "--port", str(self.embedder_port)],
            self.common_env(),
            self.workdir / "embedder.log",
        )
        self.embedder.start()
        wait_until_ready(f"{self.embedder_url}/readyz", self.embedder)

    def start_gateway(self) -> None:
        env = {
            **self.common_env(),
            "SEMANTIK_DATA_DIR": str(self.workdir / "data"),
            "SEMANTIK_DATABASE_URL": self.database_url,
            "SEMANTIK_MODE": "service",
            **self.gateway_env,
        }
        self.gateway = Process(
            "gateway", ["serve", "--port", str(self.gateway_port)], env, self.workdir / "gateway.log"
        )
        self.gateway.start()
        wait_until_ready(f"{self.gateway_url}/healthz", self.gateway)

    def start_worker(self, extra_env: Mapping[str, str] | None = None) -> Process:
        env = {**self.common_env(), "SEMANTIK_WORKER_JOB_TIMEOUT": str(self.job_timeout), **(extra_env or {})}
        number = len(self.workers)
        worker = Process(f"worker-{number}", ["worker"], env, self.workdir / f"worker-{number}.log")
        worker.start()
        self.workers.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()
        for process in (self.gateway, self.embedder):
            if process is not None:
                process.stop()

    def logs(self) -> str:
        processes = [p for p in (self.embedder, self.gateway, *self.workers) if p is not None]
        return "\n".join(f"--- {p.name} ---\n{p.log_tail()}" for p in processes)

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.gateway_url, timeout=30)


def operation(client: httpx.Client, operation_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/operations/{operation_id}")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def wait_for_operation(
    client: httpx.Client, operation_id: str, timeout: float = 300.0, every: float = 0.25
) -> dict[str, Any]:
    """Poll until the operation ends, riding out a gateway that is briefly down."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            body = operation(client, operation_id)
        except httpx.HTTPError:
            time.sleep(0.5)
            continue
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return body
        time.sleep(every)
    raise TimeoutError(f"operation {operation_id} did not end in {timeout:.0f}s")


def wait_for_progress(
    client: httpx.Client, operation_id: str, files: int, workers: list[Process], timeout: float = 300.0
) -> dict[str, Any]:
    """Poll until at least `files` files are processed (or the operation ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if workers and not any(worker.running for worker in workers):
            raise RuntimeError("every worker exited:\n" + "\n".join(w.log_tail() for w in workers))
        body = operation(client, operation_id)
        if body["files_processed"] >= files or body["status"] in ("succeeded", "failed", "cancelled"):
            return body
        time.sleep(0.1)
    raise TimeoutError(f"operation {operation_id} did not reach {files} files in {timeout:.0f}s")


def restart_server(script: str, directory: Path) -> str:
    return hack(script, "restart", directory)


def kill9_server(script: str, directory: Path) -> None:
    hack(script, "kill9", directory)
