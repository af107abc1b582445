"""The vector store at scale: edge (qdrant-edge in process: HNSW and payload indexes) beside local mode
(qdrant-client's exact numpy scan, the embedded default before it) on the same synthetic chunks.

Each backend loads, then queries, in a process of its own, so the RSS printed is that backend's alone. Recall@10
is measured against an exact numpy scan over the same vectors, computed in this process before the backends run.
Everything is generated from seeds, batch by batch, so a million chunks never sit in memory at once.

BENCH_STORE_SIZES (default 100000,1000000), BENCH_STORE_LOCAL_MAX (the largest size local mode is asked to
hold; default 100000), BENCH_STORE_QUERIES (default 200) and BENCH_STORE_MODE_SECONDS (the time one backend may
spend on one query mode; default 30) size a run; BENCH_STORE_MEMORY (warm or low, as SEMANTIK_STORE_MEMORY;
default warm) shapes edge's collections.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.report import percentile
from semantik.core.pipeline.ids import LATEST_SCHEME, point_id
from semantik.core.search.fusion import Fusion, Ranked, fuse
from semantik.core.search.sparse import SparseVector
from semantik.core.services.search import (
    DEFAULT_FEEDBACK,
    DEFAULT_FEEDBACK_WEIGHT,
    candidate_payload_keys,
    rocchio,
)
from semantik.core.store.backend import StoreEngine, StoreMemory, VectorBackend, open_backend
from semantik.core.store.vectors import DENSE, SPARSE, ChunkPoint, RetrieverQuery, SearchFilter

SIZES = [int(s) for s in os.environ.get("BENCH_STORE_SIZES", "100000,1000000").split(",") if s]
LOCAL_MAX = int(os.environ.get("BENCH_STORE_LOCAL_MAX", "100000"))
QUERIES = int(os.environ.get("BENCH_STORE_QUERIES", "200"))
MODE_SECONDS = float(os.environ.get("BENCH_STORE_MODE_SECONDS", "30"))
MIN_QUERIES = 5
STORE_DIR = os.environ.get("BENCH_STORE_DIR") or None
MEMORY = StoreMemory(os.environ.get("BENCH_STORE_MEMORY", StoreMemory.WARM.value))
SEED = 16
COLLECTION = "bench"
DIM = 384
BATCH = 2000
FILE_CHUNKS = 10
"""Chunks per file: point n is chunk n % 10 of file n // 10."""
TOPICS = 4096
VOCABULARY = 30_000
TEAMS, PROJECTS = 12, 10
SUBDIRS = ("notes", "specs", "src", "archive", "drafts", "2023", "2024", "reports")
EXTENSIONS = ("md", "txt", "py", "pdf", "docx", "html")
EXTENSION_SHARES = (0.3, 0.2, 0.2, 0.15, 0.1, 0.05)
K = 10
FETCH = 100
"""search.py asks each retriever for max(prefetch, k) = 100 chunks by default."""
UPSERT_BATCH = 256
SCHEME = LATEST_SCHEME
"""Point ids as a new collection makes them: they carry their file, so candidates are read without payload."""
GOAL_P50_MS, GOAL_RECALL, GOAL_RSS_MIB = 5.0, 0.98, 2.5 * 1024
TEXT_SOURCES = [Path("/usr/share/common-licenses"), Path(__file__).resolve().parent.parent / "docs"]

Vectors = npt.NDArray[np.float32]


def open_store(engine: str, path: Path) -> VectorBackend:
    return open_backend(url=None, path=path, engine=StoreEngine(engine), memory=MEMORY)


# -- the synthetic corpus -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Layout:
    """The numeric part of one batch: what the exact scan needs."""

    start: int
    vectors: Vectors
    dirs: npt.NDArray[np.int64]
    """team * PROJECTS + project of each point: the `team-TT/project-P` a dir-prefix filter names."""
    exts: npt.NDArray[np.int64]
    subdirs: npt.NDArray[np.int64]
    """Per file: up to two SUBDIRS below the project (-1: none)."""


def topic_centres() -> Vectors:
    """Topics in 64 broader fields, so that unrelated chunks are not all equally far apart."""
    rng = np.random.default_rng([SEED, 0])
    fields = unit(rng.standard_normal((64, DIM), dtype=np.float32))
    return unit(
        0.8 * fields[rng.integers(64, size=TOPICS)] + unit(rng.standard_normal((TOPICS, DIM), dtype=np.float32))
    )


def layout(number: int, centres: Vectors) -> Layout:
    """Batch `number`: files on topics; a chunk is its topic's centre, its file's direction and its own noise,
    so a query's neighbours are chunks of its file and of its topic, at overlapping cosines (≈ 0.58 and ≈ 0.52)."""
    rng = np.random.default_rng([SEED, 1, number])
    files = BATCH // FILE_CHUNKS
    topic = rng.integers(TOPICS, size=files)
    dirs = rng.integers(TEAMS, size=files) * PROJECTS + rng.integers(PROJECTS, size=files)
    exts = rng.choice(len(EXTENSIONS), size=files, p=EXTENSION_SHARES)
    depth = rng.integers(3, size=files)
    subdirs = np.where(np.arange(2) < depth[:, None], rng.integers(len(SUBDIRS), size=(files, 2)), -1)
    file_direction = unit(rng.standard_normal((files, DIM), dtype=np.float32))
    noise = unit(rng.standard_normal((BATCH, DIM), dtype=np.float32))
    vectors = unit(
        centres[np.repeat(topic, FILE_CHUNKS)] + 0.35 * np.repeat(file_direction, FILE_CHUNKS, axis=0) + 0.9 * noise
    )
    return Layout(
        number * BATCH,
        vectors,
        np.repeat(dirs, FILE_CHUNKS),
        np.repeat(exts, FILE_CHUNKS),
        subdirs,
    )


def unit(vectors: Vectors) -> Vectors:
    normed: Vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    return normed


def dir_name(code: int) -> str:
    return f"team-{code // PROJECTS:02d}/project-{code % PROJECTS}"


def text_pool() -> str:
    files = sorted(p for source in TEXT_SOURCES for p in source.iterdir() if p.is_file())
    return " ".join(" ".join(p.read_text(errors="replace").split()) for p in files)


def zipf_cdf() -> npt.NDArray[np.float64]:
    weights = 1.0 / np.arange(1, VOCABULARY + 1)
    cdf: npt.NDArray[np.float64] = np.cumsum(weights) / weights.sum()
    return cdf


def term_ids(ranks: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Vocabulary rank -> a spread 32-bit id, as the analyser's hash spreads real terms (odd multiplier: no
    two ranks share an id)."""
    ids: npt.NDArray[np.int64] = (ranks * 2654435761 + 40503) % (1 << 32)
    return ids


def chunk_points(batch: Layout, pool: str, cdf: npt.NDArray[np.float64]) -> list[ChunkPoint]:
    """The batch as the indexer would upsert it: paths in nested folders, chunk text of 200-2400 characters
    (about 1100, a 256-token chunk), and BM25 weights of 30-80 distinct terms drawn Zipf-like."""
    rng = np.random.default_rng([SEED, 2, batch.start])
    lengths = np.clip(rng.normal(1100, 350, size=BATCH), 200, 2400).astype(np.int64)
    starts = rng.integers(0, len(pool) - lengths)
    term_counts = rng.integers(30, 81, size=BATCH)
    draws = term_ids(np.searchsorted(cdf, rng.random(int(term_counts.sum()) * 2)).astype(np.int64))
    offsets = np.concatenate([[0], np.cumsum(term_counts * 2)])
    vectors = batch.vectors.tolist()
    points = []
    ids = batch_ids(batch)
    for i in range(BATCH):
        n = batch.start + i
        path = chunk_path(batch, i)
        terms, tf = np.unique(draws[offsets[i] : offsets[i + 1]], return_counts=True)
        keep = np.sort(rng.permutation(len(terms))[: term_counts[i]])
        weights = tf[keep] / (tf[keep] + 1.2)
        start = int(starts[i])
        points.append(
            ChunkPoint(
                id=ids[i],
                vector=vectors[i],
                path=path,
                chunk_index=n % FILE_CHUNKS,
                text=pool[start : start + int(lengths[i])],
                start=start,
                end=start + int(lengths[i]),
                heading=f"Section {n % 7}",
                sparse=SparseVector(tuple(terms[keep].tolist()), tuple(weights.tolist())),
            )
        )
    return points


def chunk_path(batch: Layout, i: int) -> str:
    """The file of the batch's point `i`: in its project's folder, up to two subfolders down."""
    file = (batch.start + i) // FILE_CHUNKS
    subdirs = [SUBDIRS[s] for s in batch.subdirs[i // FILE_CHUNKS] if s >= 0]
    return "/".join([dir_name(int(batch.dirs[i])), *subdirs, f"file-{file:07d}.{EXTENSIONS[batch.exts[i]]}"])


def batch_ids(batch: Layout) -> list[str]:
    return [
        point_id(COLLECTION, chunk_path(batch, i), (batch.start + i) % FILE_CHUNKS, scheme=SCHEME) for i in range(BATCH)
    ]


# -- queries and the exact answers ----------------------------------------------------------------------------


MODES = [
    ("dense", None),
    ("dense", "dir"),
    ("dense", "ext"),
    ("hybrid", None),
    ("hybrid", "dir"),
    ("hybrid", "ext"),
    ("feedback", None),
]
"""`feedback` is a hybrid search as the search service makes it by default: hybrid, then pseudo-relevance
feedback's second dense search. The store goals are per store search, so it is reported beside them."""


def make_queries(size: int, centres: Vectors) -> dict[str, Any]:
    """Stored vectors, perturbed (cosine ≈ 0.9 to their source); each filtered to its source's project folder
    or extension; and 2-4 keywords of middling frequency for the sparse retriever."""
    rng = np.random.default_rng([SEED, 3, size])
    sources = np.sort(rng.choice(size, size=QUERIES, replace=False))
    vectors = np.empty((QUERIES, DIM), dtype=np.float32)
    dirs = np.empty(QUERIES, dtype=np.int64)
    exts = np.empty(QUERIES, dtype=np.int64)
    for number in np.unique(sources // BATCH):
        batch = layout(int(number), centres)
        here = np.flatnonzero(sources // BATCH == number)
        rows = sources[here] - batch.start
        vectors[here] = batch.vectors[rows]
        dirs[here] = batch.dirs[rows]
        exts[here] = batch.exts[rows]
    vectors = unit(vectors + 0.025 * rng.standard_normal(vectors.shape, dtype=np.float32))
    keywords = [np.unique(term_ids(rng.integers(100, 5000, size=rng.integers(2, 5)))).tolist() for _ in sources]
    return {"vectors": vectors.tolist(), "dirs": dirs.tolist(), "exts": exts.tolist(), "keywords": keywords}


def exact_top_k(size: int, queries: dict[str, Any], centres: Vectors) -> dict[str, list[list[str]]]:
    """Brute force over every generated vector: the true top 10 unfiltered, within the query's folder, and
    within its extension."""
    q = np.asarray(queries["vectors"], dtype=np.float32)
    masks = {"dir": np.asarray(queries["dirs"])[:, None], "ext": np.asarray(queries["exts"])[:, None]}
    best = {key: (np.full((len(q), K), -np.inf), np.full((len(q), K), "", dtype=object)) for key in ("none", *masks)}
    for number in range(size // BATCH):
        batch = layout(number, centres)
        scores = q @ batch.vectors.T
        ids = np.broadcast_to(np.array(batch_ids(batch), dtype=object), scores.shape)
        for key, (top_scores, top_ids) in best.items():
            masked = scores
            if key != "none":
                masked = np.where((batch.dirs if key == "dir" else batch.exts)[None, :] == masks[key], scores, -np.inf)
            all_scores = np.concatenate([top_scores, masked], axis=1)
            all_ids = np.concatenate([top_ids, ids], axis=1)
            order = np.argsort(-all_scores, axis=1, kind="stable")[:, :K]
            best[key] = (np.take_along_axis(all_scores, order, 1), np.take_along_axis(all_ids, order, 1))
    return {key: top_ids.tolist() for key, (_, top_ids) in best.items()}


# -- one backend, in a process of its own ---------------------------------------------------------------------


def memory_mib() -> dict[str, float]:
    """This process's resident set now (VmRSS), the part of it not backed by files (RssAnon), and its peak
    (VmHWM), in MiB. Mapped store files count in VmRSS but the kernel can drop them under pressure."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "RssAnon", "VmHWM")}


def disk_mib(path: Path) -> float:
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file()) / 2**20


async def load(backend: str, size: int, path: Path) -> dict[str, Any]:
    centres, pool, cdf = topic_centres(), text_pool(), zipf_cdf()
    store = open_store(backend, path)
    await store.ensure_collection(COLLECTION, DIM)
    generating = upserting = 0.0
    started = time.perf_counter()
    for number in range(size // BATCH):
        mark = time.perf_counter()
        points = chunk_points(layout(number, centres), pool, cdf)
        generating += time.perf_counter() - mark
        mark = time.perf_counter()
        for i in range(0, len(points), UPSERT_BATCH):
            await store.upsert(COLLECTION, points[i : i + UPSERT_BATCH])
        upserting += time.perf_counter() - mark
    after_load = memory_mib()
    mark = time.perf_counter()
    await store.close()
    closing = time.perf_counter() - mark
    return {
        "upsert_s": upserting,
        "generate_s": generating,
        "wall_s": time.perf_counter() - started,
        "close_s": closing,
        "rss_after_load": after_load["VmRSS"],
        "anon_after_load": after_load["RssAnon"],
        "rss_peak": memory_mib()["VmHWM"],
        "disk": disk_mib(path),
    }


def retriever_queries(queries: dict[str, Any], i: int, kind: str) -> list[RetrieverQuery]:
    dense = RetrieverQuery(DENSE, queries["vectors"][i])
    if kind == "dense":
        return [dense]
    keywords = queries["keywords"][i]
    return [dense, RetrieverQuery(SPARSE, SparseVector(tuple(keywords), tuple(1.0 for _ in keywords)))]


def search_filter(queries: dict[str, Any], i: int, by: str | None) -> SearchFilter | None:
    if by == "dir":
        return SearchFilter(path_prefix=dir_name(queries["dirs"][i]))
    if by == "ext":
        return SearchFilter(extensions=(EXTENSIONS[queries["exts"][i]],))
    return None


async def search_once(store: VectorBackend, queries: dict[str, Any], i: int, kind: str, by: str | None) -> list[str]:
    """One search as search.py issues it: every retriever's 100 best in one call (their ids carry their files,
    so no payload), fused with DBSF (for `feedback`, then the dense query moved towards the best 3 fused chunks
    and asked again, and fused anew), then the whole payload of the top 10. Not collapsed to files, so that
    recall compares chunks with the exact scan's; the collapse itself is a dict lookup per candidate."""
    retrievers = retriever_queries(queries, i, kind)
    search_filter_ = search_filter(queries, i, by)
    keys = candidate_payload_keys(SCHEME)
    runs = await store.retrieve(COLLECTION, retrievers, limit=FETCH, search_filter=search_filter_, payload_keys=keys)
    if kind == "dense":
        top = [chunk.id for chunk in runs[DENSE][:K]]
    else:
        ranked = {name: [Ranked(c.id, c.score) for c in run] for name, run in runs.items()}
        fused = fuse(Fusion.DBSF, ranked)
        if kind == "feedback" and fused:
            vectors = await store.dense_vectors(COLLECTION, [f.id for f in fused[:DEFAULT_FEEDBACK]])
            moved = rocchio(queries["vectors"][i], vectors, DEFAULT_FEEDBACK_WEIGHT)
            second = await store.retrieve(
                COLLECTION, [RetrieverQuery(DENSE, moved)], limit=FETCH, search_filter=search_filter_, payload_keys=keys
            )
            ranked[DENSE] = [Ranked(c.id, c.score) for c in second[DENSE]]
            fused = fuse(Fusion.DBSF, ranked)
        top = [f.id for f in fused[:K]]
    payloads = await store.payloads(COLLECTION, top)
    return [point for point in top if point in payloads]


async def query(backend: str, size: int, path: Path, queries: dict[str, Any]) -> dict[str, Any]:
    mark = time.perf_counter()
    store = open_store(backend, path)
    count = await store.count(COLLECTION)
    opening = time.perf_counter() - mark
    if count != size:
        raise SystemExit(f"{backend}: the store holds {count} points, not {size}")
    after_open = memory_mib()["VmRSS"]
    for i in range(3):
        await search_once(store, queries, i, "hybrid", None)
    modes: dict[str, Any] = {}
    for kind, by in MODES:
        seconds: list[float] = []
        found: list[list[str]] = []
        deadline = time.perf_counter() + MODE_SECONDS
        for i in range(len(queries["vectors"])):
            mark = time.perf_counter()
            ids = await search_once(store, queries, i, kind, by)
            seconds.append(time.perf_counter() - mark)
            found.append(ids)
            if time.perf_counter() > deadline and i + 1 >= MIN_QUERIES:
                break
        modes[mode_name(kind, by)] = {"seconds": seconds, "found": found}
    after_queries = memory_mib()
    await store.close()
    return {
        "open_s": opening,
        "rss_after_open": after_open,
        "rss_after_queries": after_queries["VmRSS"],
        "anon_after_queries": after_queries["RssAnon"],
        "rss_peak": after_queries["VmHWM"],
        "modes": modes,
    }


def mode_name(kind: str, by: str | None) -> str:
    return {"feedback": "hybrid + feedback"}.get(kind, kind) + {None: "", "dir": ", folder", "ext": ", extension"}[by]


def child(argv: list[str]) -> None:
    """`python -m bench.store load|query BACKEND SIZE STORE QUERIES OUT`: one phase in this process."""
    phase, backend, size, store, queries_file, out = argv
    # Local mode warns past 20k points; the bench is here to say how far past it can go.
    warnings.filterwarnings("ignore", "Local mode is not recommended", UserWarning)
    if phase == "load":
        result = asyncio.run(load(backend, int(size), Path(store)))
    else:
        queries = json.loads(Path(queries_file).read_text())
        result = asyncio.run(query(backend, int(size), Path(store), queries))
    Path(out).write_text(json.dumps(result))


def run_child(phase: str, backend: str, size: int, store: Path, queries_file: Path) -> dict[str, Any]:
    out = store.parent / f"{backend}-{phase}.json"
    command = [sys.executable, "-m", "bench.store", phase, backend, str(size), str(store), str(queries_file), str(out)]
    subprocess.run(command, check=True)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


# -- the report -----------------------------------------------------------------------------------------------


def recall(found: list[list[str]], exact: list[list[str]]) -> float:
    hits = sum(len(set(f) & set(e)) for f, e in zip(found, exact, strict=False))
    return hits / sum(len(e) for e in exact[: len(found)])


def print_size(size: int, results: dict[str, dict[str, Any]], exact: dict[str, list[list[str]]]) -> None:
    print(f"\n-- {size:,} chunks, {DIM}-d")
    print(
        f"{'backend':<12} {'upsert':>12} {'load: RSS':>10} {'peak':>8} {'open':>8} "
        f"{'query: RSS':>11} {'peak':>8} {'disk':>9}"
    )
    for backend, r in results.items():
        load_, query_ = r["load"], r["query"]
        print(
            f"{backend:<12} {size / load_['upsert_s']:>7,.0f} pt/s {load_['rss_after_load']:>6,.0f} MiB "
            f"{load_['rss_peak']:>4,.0f} MiB {query_['open_s']:>6.1f} s {query_['rss_after_queries']:>7,.0f} MiB "
            f"{query_['rss_peak']:>4,.0f} MiB {load_['disk']:>5,.0f} MiB"
        )
    for backend, r in results.items():
        print(
            f"{backend}: not file-backed (RssAnon) {r['load']['anon_after_load']:,.0f} MiB after load, "
            f"{r['query']['anon_after_queries']:,.0f} MiB after queries"
        )
    names = list(results)
    print("\nsearch, 10 of 100 fetched per retriever: p50 / p99 ms (queries timed), recall@10 against the exact scan")
    header = "".join(f"{b:>31}" for b in names)
    print(f"{'':<18}{header}{'p50 ' + names[-1] + '/' + names[0]:>26}" if len(names) > 1 else f"{'':<18}{header}")
    for kind, by in MODES:
        name = mode_name(kind, by)
        cells = ""
        for backend in names:
            mode = results[backend]["query"]["modes"][name]
            ms = [s * 1000 for s in mode["seconds"]]
            hit = f"{recall(mode['found'], exact[by or 'none']):.3f}" if kind == "dense" else "    -"
            cells += f"{percentile(ms, 50):>9.2f} /{percentile(ms, 99):>8.1f} ({len(ms):>3}) {hit}"
        if len(names) > 1:
            p50s = [percentile(results[b]["query"]["modes"][name]["seconds"], 50) for b in names]
            cells += f"{p50s[-1] / p50s[0]:>25.4f}x"
        print(f"{name:<18}{cells}")
    for backend in names:
        modes = results[backend]["query"]["modes"]
        ratio_ = percentile(modes["hybrid"]["seconds"], 50) / percentile(modes["dense"]["seconds"], 50)
        print(f"{backend}: hybrid / dense p50 {ratio_:.2f}x")
    if len(names) > 1:
        first, last = (results[b]["query"]["modes"]["hybrid"]["found"] for b in (names[0], names[-1]))
        agreement = recall(last, first)
        print(f"hybrid top-10 shared by {names[-1]} and {names[0]}: {agreement:.3f}")


def print_local_estimate(size: int, measured: int, local: dict[str, Any]) -> None:
    """Local mode scans every vector per query and holds every point as Python objects: both grow linearly."""
    scale = size / measured
    modes = local["query"]["modes"]
    dense, folder = (percentile(modes[m]["seconds"], 50) * 1000 * scale for m in ("dense", "dense, folder"))
    print(
        f"local mode at {size:,}: not run. Its exact scan grows with the store: from {measured:,}, a dense search "
        f"would take ≈ {dense:,.0f} ms and a folder-filtered one ≈ {folder:,.0f} ms, its process would hold "
        f"≈ {local['query']['rss_after_queries'] * scale / 1024:,.1f} GiB, and loading would take "
        f"≈ {local['load']['upsert_s'] * scale / 60:,.0f} min"
    )


def print_goals(size: int, edge: dict[str, Any], exact: dict[str, list[list[str]]]) -> None:
    modes = edge["query"]["modes"]
    p50 = {name: percentile(mode["seconds"], 50) * 1000 for name, mode in modes.items()}
    default_search = p50.pop(mode_name("feedback", None))
    slowest = max(p50, key=lambda n: p50[n])
    recalls = {
        mode_name("dense", by): recall(modes[mode_name("dense", by)]["found"], exact[by or "none"])
        for by in (None, "dir", "ext")
    }
    worst = min(recalls, key=lambda n: recalls[n])
    searching, loading = edge["query"]["rss_peak"], edge["load"]["rss_peak"]
    note = "" if size == 1_000_000 else f" (the goals are for 1,000,000 chunks; measured at {size:,})"
    print(f"\ngoals, edge at {size:,} chunks on this {os.cpu_count()}-core machine{note}:")
    print(
        f"  search p50 <= {GOAL_P50_MS:g} ms: dense {p50['dense']:.2f} ms {verdict(p50['dense'] <= GOAL_P50_MS)}; "
        f"slowest mode ({slowest}) {p50[slowest]:.2f} ms {verdict(p50[slowest] <= GOAL_P50_MS)}"
    )
    print(
        f"  (a search as the search service makes it by default, hybrid + feedback, is two store searches: "
        f"{default_search:.2f} ms)"
    )
    print(
        f"  recall@10 >= {GOAL_RECALL}: unfiltered {recalls['dense']:.3f} "
        f"{verdict(recalls['dense'] >= GOAL_RECALL)}; lowest ({worst}) {recalls[worst]:.3f} "
        f"{verdict(recalls[worst] >= GOAL_RECALL)}"
    )
    print(
        f"  RSS <= {GOAL_RSS_MIB / 1024:g} GiB: searching, peak {searching:,.0f} MiB "
        f"{verdict(searching <= GOAL_RSS_MIB)}; "
        f"loading, peak {loading:,.0f} MiB {verdict(loading <= GOAL_RSS_MIB)} "
        f"({edge['load']['anon_after_load']:,.0f} MiB of it not file-backed after the load)"
    )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


async def main() -> None:
    centres = topic_centres()
    local: tuple[int, dict[str, Any]] | None = None
    print(
        f"{QUERIES} queries per mode (fewer where one mode passes {MODE_SECONDS:g} s); edge memory {MEMORY.value}; "
        "CPU shared, figures noisy"
    )
    for size in sorted(SIZES):
        if size % BATCH:
            raise SystemExit(f"BENCH_STORE_SIZES: {size} is not a multiple of {BATCH}")
        with tempfile.TemporaryDirectory(prefix="semantik-bench-store-", dir=STORE_DIR) as tmp:
            mark = time.perf_counter()
            queries = make_queries(size, centres)
            exact = exact_top_k(size, queries, centres)
            scan = time.perf_counter() - mark
            queries_file = Path(tmp) / "queries.json"
            queries_file.write_text(json.dumps(queries))
            backends = [StoreEngine.QDRANT_LOCAL, StoreEngine.EDGE] if size <= LOCAL_MAX else [StoreEngine.EDGE]
            results: dict[str, dict[str, Any]] = {}
            for backend in backends:
                store = Path(tmp) / backend
                results[backend] = {
                    "load": run_child("load", backend, size, store, queries_file),
                    "query": run_child("query", backend, size, store, queries_file),
                }
                shutil.rmtree(store)
            print_size(size, results, exact)
            print(f"exact numpy scan for the recall baseline: {scan:.1f} s (regenerating the vectors included)")
            if StoreEngine.QDRANT_LOCAL in results:
                local = (size, results[StoreEngine.QDRANT_LOCAL])
            elif local is not None:
                print_local_estimate(size, *local)
            else:
                print(
                    f"local mode at {size:,}: not run, as it is past BENCH_STORE_LOCAL_MAX={LOCAL_MAX}; a run with "
                    "a size within it as well prints an estimate"
                )
            if size == max(SIZES):
                print_goals(size, results[StoreEngine.EDGE], exact)


if __name__ == "__main__":
    child(sys.argv[1:])
