"""hack/images.sh's interface for the other scripts and tests: the image names, the podman environment,
and `import` into a containerd (a throwaway one here, as the real node's is), fast when nothing changed."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGES_SH = ROOT / "hack" / "images.sh"
BASE = "localhost/semantik-base:bookworm"


def images_sh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(IMAGES_SH), *args], capture_output=True, text=True, cwd=ROOT, timeout=1800)


def test_list_and_names() -> None:
    names = images_sh("names").stdout.split()
    images = images_sh("list").stdout.split()
    assert names == ["base", "python", "postgres", "redis", "service", "operator"]
    assert len(images) == len(names) and all(image.startswith("localhost/semantik-") for image in images)
    assert "localhost/semantik-service:dev" in images and "localhost/semantik-operator:dev" in images


def test_env_points_podman_at_semantiks_own_storage() -> None:
    exports = dict(re.findall(r"^export (\w+)=(\S+)$", images_sh("env").stdout, re.MULTILINE))
    assert set(exports) == {"CONTAINERS_STORAGE_CONF", "CONTAINERS_CONF"}
    storage = Path(exports["CONTAINERS_STORAGE_CONF"]).read_text()
    assert re.search(r'graphroot = ".*/semantik/containers/storage"', storage)
    # Root lacks CAP_SYS_RESOURCE here: podman's default rlimits would fail every container.
    assert (
        'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]' in Path(exports["CONTAINERS_CONF"]).read_text()
    )


def test_unknown_command_prints_the_usage() -> None:
    result = images_sh("nonsense")
    assert result.returncode == 2 and "hack/images.sh build [NAME...]" in result.stderr


@pytest.fixture
def containerd(tmp_path: Path) -> Iterator[str]:
    """A throwaway containerd (its own root, state and socket), stopped after the test."""
    assert shutil.which("containerd") and shutil.which("ctr"), "containerd and ctr: apt-get install containerd"
    config = tmp_path / "config.toml"
    socket = tmp_path / "c.sock"
    # The image store is all this test needs: no CRI. (Top-level keys before the tables.)
    config.write_text(
        'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'root = "{tmp_path}/root"\nstate = "{tmp_path}/state"\n'
        f'[grpc]\n  address = "{socket}"\n[ttrpc]\n  address = "{tmp_path}/ttrpc.sock"\n'
    )
    log = (tmp_path / "containerd.log").open("w")
    process = subprocess.Popen(["containerd", "--config", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(["ctr", "--address", str(socket), "version"], capture_output=True).returncode != 0:
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "containerd.log").read_text()
            time.sleep(0.2)
        yield str(socket)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.mark.timeout(1800)
def test_import_keeps_the_name_and_skips_an_image_already_there(containerd: str) -> None:
    built = images_sh("build", "base")
    assert built.returncode == 0, built.stderr[-4000:]
    first = images_sh("import", containerd, "base")
    assert first.returncode == 0 and "imported" in first.stderr, first.stderr
    listed = subprocess.run(
        ["ctr", "--address", containerd, "-n", "k8s.io", "images", "ls", "-q"], capture_output=True, text=True
    )
    assert BASE in listed.stdout.split()  # the name a pod's `image:` gives, as the CRI looks it up
    started = time.monotonic()
    again = images_sh("import", containerd, BASE)  # any podman image name works too
    assert again.returncode == 0 and "already in containerd" in again.stderr, again.stderr
    assert time.monotonic() - started < 10
    missing = images_sh("import", containerd, "localhost/no-such-image:x")
    assert missing.returncode != 0 and "no podman image" in missing.stderr
