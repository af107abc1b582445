"""The `semantik` command as a user runs it: real subprocesses, a real data dir, the real model."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.corpus import COMMON_LICENSES, KEYS_MD

SEMANTIK = [sys.executable, "-m", "semantik.cli"]


def without_root_read_override() -> list[str]:
    """As root a 0-permission file is still readable; drop the capabilities that allow it."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: a 0-permission file would still be readable")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}", "--"]


def run(
    *args: str, data_dir: Path, prefix: list[str] | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "SEMANTIK_DATA_DIR": str(data_dir), "COLUMNS": "200", **(env or {})}
    environment.pop("SEMANTIK_DATABASE_URL", None)
    return subprocess.run(
        [*(prefix or []), *SEMANTIK, *args], capture_output=True, text=True, env=environment, timeout=300
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    shutil.copyfile(COMMON_LICENSES / "Apache-2.0", root / "LICENSE")
    shutil.copyfile(COMMON_LICENSES / "MPL-2.0", root / "MPL-2.0")
    (root / "keys.md").write_text(KEYS_MD)
    return root


def test_index_search_and_manage_collections(folder: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"

    first = run("index", str(folder), "--collection", "handbook", data_dir=data)
    assert first.returncode == 0, first.stderr
    assert "Indexed 3 files" in first.stdout

    again = run("index", str(folder), "--collection", "handbook", data_dir=data)
    assert again.returncode == 0, again.stderr
    assert "Nothing changed: 3 files unchanged" in again.stdout

    found = run(
        "search",
        "handbook",
        "what must I include in a NOTICE file when I redistribute",
        "-k",
        "2",
        "--json",
        data_dir=data,
    )
    assert found.returncode == 0, found.stderr
    body = json.loads(found.stdout)
    assert body["hits"][0]["path"] == "LICENSE"
    assert len(body["hits"]) == 2

    human = run("search", "handbook", "how do I rotate keys", "-k", "1", data_dir=data)
    assert human.returncode == 0
    assert "keys.md" in human.stdout and "1. " in human.stdout

    listed = run("collections", "list", data_dir=data)
    assert "handbook" in listed.stdout
    shown = run("collections", "show", "handbook", data_dir=data)
    assert "3 (3 indexed, 0 failed)" in shown.stdout

    deleted = run("collections", "delete", "handbook", "--yes", data_dir=data)
    assert deleted.returncode == 0
    assert "handbook" not in run("collections", "list", data_dir=data).stdout


def test_bad_files_are_listed_and_the_run_still_succeeds(folder: Path, tmp_path: Path) -> None:
    secret = folder / "secret.txt"
    secret.write_text("nobody may read this")
    secret.chmod(0)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.5\ntruncated")
    (folder / "blob.bin").write_bytes(os.urandom(4096))
    (folder / "empty").write_bytes(b"")
    data = tmp_path / "data"
    data.mkdir()

    result = run("index", str(folder), "--collection", "c", data_dir=data, prefix=without_root_read_override())

    assert result.returncode == 0, result.stderr
    assert "Indexed 3 files" in result.stdout
    assert "4 files could not be indexed" in result.stdout
    assert "secret.txt: permission denied" in result.stdout
    for path in ("broken.pdf", "blob.bin", "empty"):
        assert f"{path}: " in result.stdout
    shown = run("collections", "show", "c", data_dir=data)
    assert "7 (3 indexed, 4 failed)" in shown.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["index", "/no/such/folder", "--collection", "x"], "does not exist"),
        (["index", "{folder}", "--collection", "x", "--include", "/abs/**"], "include"),
        (["index", "{folder}", "--collection", "Bad Name"], "invalid collection name"),
        (
            ["index", "{folder}", "--collection", "x", "--chunk-size", "100", "--chunk-overlap", "100"],
            "overlap",
        ),
        (["search", "missing", "anything"], "collection 'missing' does not exist"),
        (["search", "missing", "anything", "-k", "0"], "k must be between 1 and 100"),
        (["collections", "show", "missing"], "does not exist"),
    ],
)
def test_usage_errors_exit_2_with_one_line(folder: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = run(*[a.replace("{folder}", str(folder)) for a in args], data_dir=tmp_path / "data")

    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert message in lines[0]


def test_a_missing_model_fails_naming_the_setting_and_loses_nothing(folder: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run("index", str(folder), "--collection", "c", data_dir=data).returncode == 0
    (folder / "new.md").write_text("# New\n\nA new page about holidays.")

    broken = run(
        "index",
        str(folder),
        "--collection",
        "c",
        data_dir=data,
        env={"SEMANTIK_MODEL_PATH": str(tmp_path / "no-model")},
    )

    assert broken.returncode == 1
    assert "SEMANTIK_MODEL_PATH" in broken.stderr and "never downloads" in broken.stderr
    found = run("search", "c", "what must I include in a NOTICE file when I redistribute", "--json", data_dir=data)
    assert json.loads(found.stdout)["hits"][0]["path"] == "LICENSE"
    retried = run("index", str(folder), "--collection", "c", data_dir=data)
    assert retried.returncode == 0 and "Indexed 1 files" in retried.stdout


def test_keys_are_printed_once_and_listed_by_prefix(tmp_path: Path) -> None:
    data = tmp_path / "data"
    created = run("keys", "create", "ci", data_dir=data)
    assert created.returncode == 0
    key = created.stdout.strip()
    assert key.startswith("sk_") and len(key) > 40
    listed = run("keys", "list", data_dir=data)
    assert key[:12] in listed.stdout and key not in listed.stdout

    scoped = run(
        "keys",
        "create",
        "bot",
        "--role",
        "read",
        "--collections",
        "team-a-*,docs",
        "--expires-in-days",
        "30",
        data_dir=data,
    )
    assert scoped.returncode == 0, scoped.stderr
    assert "read on team-a-*, docs" in " ".join(scoped.stderr.split())
    row = next(line for line in run("keys", "list", data_dir=data).stdout.splitlines() if "bot" in line)
    assert "read" in row and "team-a-*,docs" in row
    refused = run("keys", "create", "x", "--role", "owner", data_dir=data)
    assert refused.returncode != 0 and "--role" in refused.stderr


def test_a_second_process_on_the_same_store_gets_a_clear_error(folder: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run("index", str(folder), "--collection", "c", data_dir=data).returncode == 0
    port = free_port()
    env = {**os.environ, "SEMANTIK_DATA_DIR": str(data)}
    env.pop("SEMANTIK_DATABASE_URL", None)
    server = subprocess.Popen([*SEMANTIK, "serve", "--port", str(port)], env=env, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)

        second = run("collections", "list", data_dir=data)

        assert second.returncode == 1
        assert "in use by another Semantik process" in second.stderr
        listed = httpx.get(f"http://127.0.0.1:{port}/api/v1/collections").json()
        assert [item["name"] for item in listed["items"]] == ["c"]
    finally:
        server.terminate()
        server.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_onnx_backend_indexes_and_searches_as_the_torch_one_does(folder: Path, tmp_path: Path) -> None:
    """SEMANTIK_EMBED_BACKEND=onnx end to end: the export lands in the cache the setting names, and the
    same question finds the same file first as with torch."""
    cache = tmp_path / "onnx-cache"
    question = ("search", "handbook", "what must I include in a NOTICE file when I redistribute", "--json")
    first_hits = {}
    for backend in ("torch", "onnx"):
        data = tmp_path / f"data-{backend}"
        env = {"SEMANTIK_EMBED_BACKEND": backend, "SEMANTIK_ONNX_CACHE_DIR": str(cache)}
        indexed = run("index", str(folder), "--collection", "handbook", data_dir=data, env=env)
        assert indexed.returncode == 0, indexed.stderr
        found = run(*question, data_dir=data, env=env)
        assert found.returncode == 0, found.stderr
        first_hits[backend] = json.loads(found.stdout)["hits"][0]
    assert first_hits["onnx"]["path"] == first_hits["torch"]["path"] == "LICENSE"
    assert abs(first_hits["onnx"]["score"] - first_hits["torch"]["score"]) < 1e-3
    assert [entry.name for entry in cache.iterdir() if not entry.name.startswith(".")] == [
        next(cache.glob("sentence-transformers-all-MiniLM-L6-v2-float32-*")).name
    ]
