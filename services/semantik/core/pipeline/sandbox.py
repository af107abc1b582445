"""Extraction in processes that can be killed: a hostile file costs its own row, never the run.

A pool of long-lived child processes (started from a forkserver, so none inherits the parent's torch
threads and each fork is cheap) reads, extracts and chunks one file at a time. Each child caps its
address space (RLIMIT_AS) once and its CPU time (RLIMIT_CPU, relative to what it has used so far) before
each file; the parent waits a bounded wall-clock time for the answer. A child that hits a limit is
killed and replaced, and the file is recorded failed with a reason people understand.

Chunking happens in the child too: the tokenizer's spans of a large text cost far more memory than the
text itself, and the chunker runs over untrusted text, so both belong under the same limits.

Requests and answers cross the pipe as JSON, never pickle: the parent does not unpickle what a process
that parsed a hostile file sends back, and an answer's size is capped before it is read.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import queue
import resource
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType
from typing import Any

from semantik.core.cpus import usable_cpus
from semantik.core.pipeline.chunk import Chunk, ChunkingConfig, ChunkStrategy, chunk_text
from semantik.core.pipeline.extract import ExtractionError, read_and_extract
from semantik.core.pipeline.tokens import TextTokenizer

log = logging.getLogger(__name__)

LEAN_CHILDREN = "semantik.core.pipeline.lean_children"

# Room in an answer for the chunks' JSON around their text (offsets, headings, escapes) and for
# overlapping chunks repeating text; the cap only stops a child that sends far more than it may.
_ANSWER_BYTES_PER_CHAR = 8
_ANSWER_SLACK_BYTES = 1024 * 1024
_GRACE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    processes: int
    memory_bytes: int
    cpu_seconds: int
    timeout_seconds: float
    max_text_chars: int


@dataclass(frozen=True, slots=True)
class FileRequest:
    path: str
    filename: str
    max_bytes: int
    chunking: ChunkingConfig


@dataclass(frozen=True, slots=True)
class ChunkedFile:
    format: str
    chunks: list[Chunk]


Outcome = ChunkedFile | str
"""The chunks of a file, or the reason it failed."""

Work = Callable[[FileRequest, TextTokenizer, int], Outcome]


def usable_cores() -> int:
    return usable_cpus()


def default_processes() -> int:
    return min(2, usable_cores())


def extract_and_chunk(request: FileRequest, tokenizer: TextTokenizer, max_text_chars: int) -> Outcome:
    """Read, extract and chunk one file (what a child does); a failure is its reason."""
    try:
        extracted = read_and_extract(Path(request.path), request.filename, max_bytes=request.max_bytes)
    except ExtractionError as exc:
        return exc.reason
    if len(extracted.text) > max_text_chars:
        return f"the extracted text is longer than the limit of {max_text_chars} characters"
    chunks = chunk_text(extracted.text, request.chunking, tokenizer)
    if not chunks:
        return "no text to index"
    return ChunkedFile(extracted.format, chunks)


def describe_bytes(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            amount = size / scale
            return f"{amount:.0f} {unit}" if amount == int(amount) else f"{amount:.1f} {unit}"
    return f"{size} bytes"


def _encode_request(request: FileRequest) -> bytes:
    chunking = request.chunking
    return json.dumps(
        {
            "path": request.path,
            "filename": request.filename,
            "max_bytes": request.max_bytes,
            "chunking": [chunking.strategy.value, chunking.chunk_size, chunking.chunk_overlap],
        }
    ).encode()


def _decode_request(data: bytes) -> FileRequest:
    body = json.loads(data)
    strategy, size, overlap = body["chunking"]
    return FileRequest(
        body["path"], body["filename"], body["max_bytes"], ChunkingConfig(ChunkStrategy(strategy), size, overlap)
    )


def _encode_outcome(outcome: Outcome) -> bytes:
    if isinstance(outcome, str):
        return json.dumps({"failure": outcome}).encode()
    chunks = [[c.index, c.text, c.start, c.end, c.token_count, c.heading] for c in outcome.chunks]
    return json.dumps({"format": outcome.format, "chunks": chunks}, ensure_ascii=False).encode()


def _decode_outcome(data: bytes) -> Outcome | None:
    """The child's answer; None for its report that it ran out of memory."""
    body: dict[str, Any] = json.loads(data)
    if body.get("out_of_memory"):
        return None
    if "failure" in body:
        return str(body["failure"])
    chunks = [Chunk(int(i), str(t), int(s), int(e), int(n), h) for i, t, s, e, n, h in body["chunks"]]
    return ChunkedFile(str(body["format"]), chunks)


def _limit_cpu(seconds: int) -> None:
    # RLIMIT_CPU counts the whole process's life, so each file's budget starts from what is used now.
    # Only the soft limit moves (SIGXCPU, which ends the child): an unprivileged process cannot raise
    # a hard limit it has lowered, and the next file needs a higher one.
    used = sum(os.times()[:2])
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(used) + seconds
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


def _child_main(conn: Connection, work: Work, tokenizer: TextTokenizer, limits: SandboxLimits) -> None:
    """A child's loop: one request in, one answer out, until the parent closes the pipe."""
    # One thread: a thread pool in the tokenizer would reserve address space the limit is meant for.
    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it ends the children
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    memory = limits.memory_bytes if hard == resource.RLIM_INFINITY else min(limits.memory_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (memory, hard))
    while True:
        try:
            request = _decode_request(conn.recv_bytes())
        except EOFError:
            return
        _limit_cpu(limits.cpu_seconds)
        try:
            answer = _encode_outcome(work(request, tokenizer, limits.max_text_chars))
        except MemoryError:
            # The failed allocation is freed by now; the heap may be fragmented, so this child ends.
            conn.send_bytes(b'{"out_of_memory": true}')
            return
        except Exception as exc:  # a bug or a parser's unforeseen failure costs this file only
            answer = _encode_outcome(f"extraction failed: {type(exc).__name__}")
        conn.send_bytes(answer)


class _Child:
    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn

    def stop(self) -> None:
        self.conn.close()
        self.process.join(_GRACE_SECONDS)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()

    def kill(self) -> None:
        self.process.kill()
        self.process.join()
        self.conn.close()


class ExtractionPool:
    """Prepares files in child processes under limits; thread-safe, one file per child at a time."""

    def __init__(self, tokenizer: TextTokenizer, limits: SandboxLimits, work: Work = extract_and_chunk) -> None:
        self._tokenizer = tokenizer
        self._limits = limits
        self._work = work
        self._context = multiprocessing.get_context("forkserver")
        # The forkserver imports the parsers once; each child then starts by a fork of it, in milliseconds,
        # without running the parent's main module again (lean_children).
        self._context.set_forkserver_preload([LEAN_CHILDREN, __name__])
        # Children start on first use, so a process that never indexes never starts one.
        self._idle: queue.SimpleQueue[_Child | None] = queue.SimpleQueue()
        for _ in range(limits.processes):
            self._idle.put(None)
        self._executor = ThreadPoolExecutor(limits.processes, thread_name_prefix="semantik-extract")
        self._closed = False

    @property
    def limits(self) -> SandboxLimits:
        return self._limits

    def start_children(self) -> None:
        """Start every child now rather than on first use: a worker, there only to index, does this before
        it takes jobs, so its first batch does not wait for the forkserver's imports."""
        started: list[_Child] = []
        while True:
            try:
                slot = self._idle.get_nowait()
            except queue.Empty:
                break
            started.append(slot or self._start())
        for child in started:
            self._idle.put(child)

    def prepare(self, requests: Sequence[FileRequest]) -> list[Outcome]:
        """Each file's chunks or failure reason, in the order given (blocking; up to `processes` at once)."""
        if self._closed:
            raise RuntimeError("the extraction pool is closed")
        return list(self._executor.map(self._prepare_one, requests))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=True)
        while not self._idle.empty():
            child = self._idle.get()
            if child is not None:
                child.stop()

    def __enter__(self) -> ExtractionPool:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _start(self) -> _Child:
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_child_main,
            args=(child_end, self._work, self._tokenizer, self._limits),
            name="semantik-extract",
            daemon=True,
        )
        process.start()
        child_end.close()
        return _Child(process, parent_end)

    def _prepare_one(self, request: FileRequest) -> Outcome:
        child = self._idle.get() or self._start()
        healthy = False
        try:
            child, outcome, healthy = self._ask(child, request)
        finally:
            if healthy:
                self._idle.put(child)
            else:
                child.kill()
                self._idle.put(None)
        return outcome

    def _ask(self, child: _Child, request: FileRequest) -> tuple[_Child, Outcome, bool]:
        """The child that answered, its answer, and whether it may take another file."""
        limits = self._limits
        try:
            child.conn.send_bytes(_encode_request(request))
        except OSError:
            # It died while idle (the kernel's OOM killer, say): a fresh one takes the file.
            child.kill()
            child = self._start()
            child.conn.send_bytes(_encode_request(request))
        if not child.conn.poll(limits.timeout_seconds):
            log.warning("extraction timed out file=%s seconds=%s", request.filename, limits.timeout_seconds)
            return child, f"timed out after {limits.timeout_seconds:g} s", False
        try:
            answer = child.conn.recv_bytes(limits.max_text_chars * _ANSWER_BYTES_PER_CHAR + _ANSWER_SLACK_BYTES)
        except EOFError:
            return child, self._death_reason(child), False
        except OSError:
            return child, "the extraction process sent back more than its limit", False
        outcome = _decode_outcome(answer)
        if outcome is None:
            return child, f"exceeded the {describe_bytes(limits.memory_bytes)} memory limit", False
        return child, outcome, True

    def _death_reason(self, child: _Child) -> str:
        child.process.join(_GRACE_SECONDS)
        code = child.process.exitcode
        if code == -signal.SIGXCPU:
            return f"used more than {self._limits.cpu_seconds} s of CPU"
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            # Under RLIMIT_AS a native library that cannot allocate often aborts or faults instead of
            # raising MemoryError; the limit is the likeliest cause, but the signal is what is known.
            memory = describe_bytes(self._limits.memory_bytes)
            return f"the extraction process was killed by {name} (memory limit {memory})"
        return f"the extraction process exited with status {code}"
