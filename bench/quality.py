"""Retrieval quality on a relevance-judged collection (Cranfield by default): the project's own index and search
path in each mode beside the shared baselines (bm25s, exhaustive dense, their RRF), computed in the same run with
the shared script's metrics, plus search latency per mode.

The dataset folder is SEMANTIK_EVAL_DIR (default ../shared/eval/cranfield next to the repository); the baselines
come from evaluate_baselines.py in its parent folder, loaded as it is so both sides share one definition of the
metrics. Chunking follows SEMANTIK_CHUNK_SIZE / SEMANTIK_CHUNK_OVERLAP (the project's defaults when unset).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

from bench.report import latency_line, percentile
from semantik.core.context import Semantik, open_semantik
from semantik.core.search.fusion import Fusion
from semantik.core.services import collections, indexing
from semantik.core.services.search import MAX_K, Mode, SearchOptions, search_collections
from semantik.core.settings import Settings

EVAL_DIR_ENV = "SEMANTIK_EVAL_DIR"
DEFAULT_EVAL_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "cranfield"
THREADS = 2
"""CPU threads for the dense baseline's torch; the machine is shared, and both sides get the same."""
DEPTH = MAX_K
RRF_K = 60
COLLECTION = "quality"
# Rerank off: these are the retrievers' and fusions' own figures, whatever reranker the environment configures.
MODES: dict[str, SearchOptions] = {
    "sparse": SearchOptions(mode=Mode.SPARSE, rerank=False),
    "dense": SearchOptions(mode=Mode.DENSE, rerank=False),
    "hybrid RRF": SearchOptions(mode=Mode.HYBRID, fusion=Fusion.RRF, rerank=False),
    "hybrid DBSF": SearchOptions(mode=Mode.HYBRID, fusion=Fusion.DBSF, rerank=False),
    "hybrid RRF, no feedback": SearchOptions(mode=Mode.HYBRID, fusion=Fusion.RRF, feedback=0, rerank=False),
    "hybrid DBSF, no feedback": SearchOptions(mode=Mode.HYBRID, fusion=Fusion.DBSF, feedback=0, rerank=False),
}
GOAL_SPARSE_GAP = 0.01
GOAL_HYBRID_NDCG = 0.42
GOAL_LATENCY_RATIO = 1.5

Run = dict[str, dict[str, float]]
"""query id -> {doc id: score}, the shared script's shape."""


@dataclass(slots=True)
class ModeResult:
    run: Run = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)
    answered_as: set[str] = field(default_factory=set)
    notes: set[str] = field(default_factory=set)


def eval_dir() -> Path:
    return Path(os.environ.get(EVAL_DIR_ENV) or DEFAULT_EVAL_DIR)


def load_baselines(script: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("evaluate_baselines", script)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {script} as a module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def main() -> None:
    loaded = load_eval("quality")
    if loaded is None:
        return
    shared, corpus, queries, qrels = loaded
    print(f"{eval_dir()}: {len(corpus)} documents, {len(queries)} judged queries")

    baselines = await asyncio.to_thread(baseline_runs, shared, corpus, queries)
    with tempfile.TemporaryDirectory(prefix="semantik-quality-") as tmp:
        files = write_corpus(shared, corpus, Path(tmp) / "docs")
        async with open_semantik(Settings(data_dir=Path(tmp) / "data")) as app:
            await index_corpus(app, Path(tmp) / "docs")
            results = await search_all_modes(app, queries, files)

    print_report(shared, qrels, baselines, results)


def load_eval(section: str) -> tuple[ModuleType, Mapping[str, Any], dict[str, str], Mapping[str, Any]] | None:
    """The shared script, the corpus and the judged queries; None (and a line saying so) when missing."""
    folder = eval_dir()
    script = folder.parent / "evaluate_baselines.py"
    missing = [str(p) for p in (folder / "corpus.jsonl", script) if not p.exists()]
    if missing:
        print(f"{section}: skipped, not found: {', '.join(missing)} (set {EVAL_DIR_ENV} to a BEIR-format folder)")
        return None
    shared = load_baselines(script)
    corpus, queries, qrels = shared.load_beir(folder)
    return shared, corpus, {qid: text for qid, text in queries.items() if qid in qrels}, qrels


def as_ranked_scores(hits: Sequence[Any], files: Mapping[str, str]) -> dict[str, float]:
    """Document id -> score falling with the service's rank: the shared metrics rank by score."""
    return {files[PurePosixPath(hit.path).name]: float(DEPTH - rank) for rank, hit in enumerate(hits)}


def write_corpus(shared: ModuleType, corpus: Mapping[str, Any], docs: Path) -> dict[str, str]:
    """One text file per document; returns file name -> document id."""
    docs.mkdir(parents=True)
    files = {}
    for doc_id, doc in corpus.items():
        (docs / f"{doc_id}.txt").write_text(shared.doc_string(doc), encoding="utf-8")
        files[f"{doc_id}.txt"] = doc_id
    return files


async def index_corpus(app: Semantik, docs: Path) -> None:
    settings = app.settings
    chunking = collections.ChunkingSpec(chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap)
    spec = collections.CollectionSpec(name=COLLECTION, source_path=str(docs), chunking=chunking)
    await collections.create_collection(app, spec)
    operation = await indexing.open_index_operation(app, COLLECTION, str(docs), full=False)
    started = time.perf_counter()
    report = await indexing.run_index_operation(app, operation.id)
    elapsed = time.perf_counter() - started
    progress = report.progress
    print(
        f"indexed {progress.files_total} files into {progress.chunks} chunks in {elapsed:.1f} s "
        f"(chunk size {chunking.chunk_size}, overlap {chunking.chunk_overlap} tokens)"
    )


async def dense_ndcg_by_embedder(configs: Mapping[str, Mapping[str, Any]]) -> dict[str, float] | None:
    """nDCG@10 of dense search through the search service, the eval collection indexed once per embedder
    configuration (Settings fields: embed_backend, dtype, ...); None when the eval collection is missing."""
    loaded = load_eval("quality by embedder")
    if loaded is None:
        return None
    shared, corpus, queries, qrels = loaded
    options = SearchOptions(mode=Mode.DENSE, rerank=False)
    scores = {}
    with tempfile.TemporaryDirectory(prefix="semantik-quality-") as tmp:
        files = write_corpus(shared, corpus, Path(tmp) / "docs")
        for label, overrides in configs.items():
            data = Path(tmp) / f"data-{len(scores)}"
            settings = Settings(data_dir=data, onnx_cache_dir=Path(tmp) / "onnx", **overrides)
            async with open_semantik(settings) as app:
                print(f"{label}: ", end="", flush=True)
                await index_corpus(app, Path(tmp) / "docs")
                run: Run = {}
                for qid, text in queries.items():
                    answer = await search_collections(app, [COLLECTION], text, k=DEPTH, options=options)
                    run[qid] = as_ranked_scores(answer.hits, files)
            scores[label] = shared.evaluate(qrels, run)[0]["ndcg@10"]
    return scores


def baseline_runs(shared: ModuleType, corpus: Mapping[str, Any], queries: Mapping[str, str]) -> dict[str, Run]:
    bm25: Run = shared.bm25_run(corpus, queries, DEPTH)
    dense: Run = shared.dense_run(corpus, queries, DEPTH, None, 32, THREADS)
    rrf: Run = shared.rrf_run([bm25, dense], RRF_K, DEPTH)
    return {
        "BM25 baseline (bm25s)": bm25,
        "dense baseline (all-MiniLM-L6-v2, exhaustive)": dense,
        f"RRF baseline (k={RRF_K}) of BM25 + dense": rrf,
    }


async def search_all_modes(
    app: Semantik, queries: Mapping[str, str], files: Mapping[str, str]
) -> dict[str, ModeResult]:
    """Every query through the search service in every mode, one hit per document, ranked as the service ranks.

    The modes take turns query by query, so whatever else loads the machine weighs on each mode alike.
    """
    for options in MODES.values():
        # Untimed: the first call in a mode loads what later calls reuse.
        await search_collections(app, [COLLECTION], next(iter(queries.values())), k=DEPTH, options=options)
    results = {label: ModeResult() for label in MODES}
    for qid, text in queries.items():
        for label, options in MODES.items():
            started = time.perf_counter()
            answer = await search_collections(app, [COLLECTION], text, k=DEPTH, options=options)
            result = results[label]
            result.seconds.append(time.perf_counter() - started)
            result.run[qid] = as_ranked_scores(answer.hits, files)
            result.answered_as.update(mode.value for mode in answer.modes.values())
            result.notes.update(answer.notes)
    return results


def print_report(
    shared: ModuleType, qrels: Mapping[str, Any], baselines: Mapping[str, Run], results: Mapping[str, ModeResult]
) -> None:
    scores: dict[str, tuple[float, float]] = {}
    for label, run in [*baselines.items(), *((f"Semantik {m}", r.run) for m, r in results.items())]:
        mean, _ = shared.evaluate(qrels, run)
        scores[label] = (mean["ndcg@10"], mean["recall@100"])
    width = max(len(label) for label in scores)
    print(f"\n| {'method':<{width}} | nDCG@10 | Recall@100 |")
    print(f"| {'-' * width} | ------: | ---------: |")
    for label, (ndcg, recall) in scores.items():
        print(f"| {label:<{width}} | {ndcg:7.4f} | {recall:10.4f} |")

    print(f"\nsearch latency, k={DEPTH}, one hit per document, modes taking turns query by query:")
    for mode, result in results.items():
        print(latency_line(f"  Semantik {mode}", result.seconds))
        asked = str(MODES[mode].mode)
        if result.answered_as != {asked}:
            print(f"  answered as {', '.join(sorted(result.answered_as))}, not {asked}")
        for note in sorted(result.notes):
            print(f"  note: {note}")

    sparse_gap = scores["Semantik sparse"][0] - scores["BM25 baseline (bm25s)"][0]
    best_hybrid = max(scores["Semantik hybrid RRF"][0], scores["Semantik hybrid DBSF"][0])
    dense_p50 = percentile(results["dense"].seconds, 50)
    print(f"\nsparse vs bm25s baseline, nDCG@10: {sparse_gap:+.3f} (goal: within {GOAL_SPARSE_GAP})")
    print(f"best hybrid nDCG@10 {best_hybrid:.3f} (goal ≥ {GOAL_HYBRID_NDCG})")
    for fusion in ("RRF", "DBSF"):
        ratio = percentile(results[f"hybrid {fusion}"].seconds, 50) / dense_p50
        print(f"hybrid {fusion} p50 / dense p50 = {ratio:.2f} (goal ≤ {GOAL_LATENCY_RATIO})")
