"""The `semantik` command: index a folder, search it, manage collections and keys, serve the gateway."""

from __future__ import annotations

import asyncio
import inspect
import sys
import time
import typing
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from semantik.core.context import Semantik, open_semantik
from semantik.core.embedding import EmbedBackend, Precision
from semantik.core.errors import InvalidInputError, SemantikError
from semantik.core.logs import configure_logging
from semantik.core.pipeline import runner as pipeline
from semantik.core.pipeline.chunk import ChunkStrategy
from semantik.core.search.fusion import DEFAULT_RRF_K, Fusion
from semantik.core.services.search import DEFAULT_FEEDBACK, DEFAULT_PREFETCH
from semantik.core.services.search import Mode as SearchMode
from semantik.core.settings import EDGE_STORE_DIR, Mode, Settings
from semantik.core.store.vectors import SearchFilter

EXIT_FAILED = 1
EXIT_USAGE = 2

app = typer.Typer(help="Semantik: semantic search over your own documents.", no_args_is_help=True)
collections_app = typer.Typer(help="List, show and delete collections.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys for the gateway.", no_args_is_help=True)
store_app = typer.Typer(help="Manage the embedded vector store.", no_args_is_help=True)
app.add_typer(collections_app, name="collections")
app.add_typer(keys_app, name="keys")
app.add_typer(store_app, name="store")

out = Console()
err = Console(stderr=True)
T = TypeVar("T")


def fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def run_command(body: Callable[[Semantik], Awaitable[T]]) -> T:
    """Open Semantik, run the command, and turn failures into one line and an exit status."""
    settings = Settings()
    configure_logging("WARNING" if settings.log_level.upper() == "INFO" else settings.log_level)

    async def main() -> T:
        async with open_semantik(settings) as semantik:
            return await body(semantik)

    try:
        return asyncio.run(main())
    except (InvalidInputError, ValidationError) as exc:
        raise fail(_message(exc), EXIT_USAGE) from None
    except SemantikError as exc:
        code = EXIT_USAGE if 400 <= exc.status < 500 else EXIT_FAILED
        raise fail(exc.message, code) from None


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}"
    return exc.message if isinstance(exc, SemantikError) else str(exc)


def async_command(func: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        run_command(lambda semantik: func(semantik, *args, **kwargs))

    # typer reads the signature: hide the injected first parameter, and resolve the string annotations
    # (postponed by `from __future__ import annotations`) so typer sees the Annotated options.
    hints = typing.get_type_hints(func, include_extras=True)
    signature = inspect.signature(func)
    parameters = [
        parameter.replace(annotation=hints.get(name, parameter.annotation))
        for name, parameter in list(signature.parameters.items())[1:]
    ]
    wrapper.__signature__ = signature.replace(parameters=parameters, return_annotation=None)  # type: ignore[attr-defined]
    return wrapper


@app.command()
@async_command
async def index(
    semantik: Semantik,
    path: Annotated[str, typer.Argument(help="Folder to index.")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection name; created if new.")],
    full: Annotated[bool, typer.Option("--full", help="Re-index every file, changed or not.")] = False,
    include: Annotated[list[str] | None, typer.Option("--include", help="Glob of files to index (repeat).")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", help="Glob of files to skip (repeat).")] = None,
    strategy: Annotated[ChunkStrategy | None, typer.Option(help="Chunking strategy for a new collection.")] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Chunk size in tokens for a new collection.")] = None,
    chunk_overlap: Annotated[int | None, typer.Option(help="Chunk overlap in tokens for a new collection.")] = None,
) -> None:
    """Index a folder into a collection: only new and changed files are embedded."""
    from semantik.core.services import collections, indexing

    root = indexing.resolve_source(path)
    settings = semantik.settings
    try:
        await collections.load_collection(semantik, collection)
        if strategy or chunk_size or chunk_overlap:
            raise InvalidInputError(
                f"collection {collection!r} exists; its chunking is fixed (delete it to change chunking)",
                field="chunking",
            )
        if include is not None or exclude is not None:
            await collections.update_globs(semantik, collection, include, exclude)
    except SemantikError as exc:
        if exc.code != "not_found":
            raise
        spec = collections.CollectionSpec(
            name=collection,
            source_path=str(root),
            include=include or ["**"],
            exclude=exclude or [],
            chunking=collections.ChunkingSpec(
                strategy=strategy or settings.chunk_strategy,
                chunk_size=chunk_size or settings.chunk_size,
                chunk_overlap=chunk_overlap if chunk_overlap is not None else settings.chunk_overlap,
            ),
        )
        await collections.create_collection(semantik, spec)
        out.print(
            f"Created collection [bold]{collection}[/] ({spec.chunking.strategy}, "
            f"{spec.chunking.chunk_size} tokens, overlap {spec.chunking.chunk_overlap})"
        )

    await _backfill(semantik, collection)
    operation = await indexing.open_index_operation(semantik, collection, str(root), full=full)
    started = time.monotonic()
    with _progress_display() as display:
        task = display.add_task("Scanning", total=None, chunks=0, rate="")

        async def show(progress: pipeline.Progress) -> None:
            elapsed = max(time.monotonic() - started, 1e-6)
            display.update(
                task,
                description=progress.phase.capitalize(),
                total=progress.files_total or None,
                completed=progress.files_processed,
                chunks=progress.chunks,
                rate=f"{progress.tokens / elapsed:,.0f} tok/s",
            )

        try:
            report = await indexing.run_index_operation(semantik, operation.id, on_progress=show)
        except (KeyboardInterrupt, asyncio.CancelledError):
            raise fail("interrupted; what was committed stays indexed, re-run to continue", EXIT_FAILED) from None
        except SemantikError:
            raise
        except Exception as exc:
            raise fail(f"indexing could not complete: {exc}; what was committed stays indexed", EXIT_FAILED) from exc
    _print_report(report, time.monotonic() - started)


async def _backfill(semantik: Semantik, collection: str) -> None:
    """Build keyword vectors a collection lacks (made before hybrid search) before indexing into it."""
    from semantik.core.services.backfill import open_backfill, run_backfill

    operation = await open_backfill(semantik, collection)
    if operation is not None:
        err.print(f"Building keyword vectors of [bold]{collection}[/] from its stored text (no re-embedding)…")
        await run_backfill(semantik, operation.id)


def _progress_display() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files · {task.fields[chunks]:,} chunks · {task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


def _print_report(report: pipeline.IndexReport, seconds: float) -> None:
    p = report.progress
    changed = p.files_processed - p.files_unchanged
    if not report.changed:
        out.print(f"Nothing changed: {p.files_unchanged} files unchanged, 0 embeddings computed.")
    else:
        out.print(
            f"Indexed {changed - p.files_failed} files ({p.chunks} chunks, {p.tokens} tokens) "
            f"in {seconds:.1f}s; {p.files_unchanged} unchanged, {p.files_removed} removed, "
            f"{p.files_failed} failed."
        )
    if report.failures:
        out.print(f"[yellow]{len(report.failures)} files could not be indexed:[/]")
        for failure in report.failures:
            out.print(f"  {failure.path}: {failure.reason}", highlight=False)
    if report.still_failing:
        out.print(f"[yellow]{len(report.still_failing)} unchanged files still fail:[/]")
        for failure in report.still_failing:
            out.print(f"  {failure.path}: {failure.reason}", highlight=False)


@app.command()
@async_command
async def search(
    semantik: Semantik,
    collection: Annotated[str, typer.Argument(help="Collection to search; several separated by commas (up to 10).")],
    query: Annotated[str, typer.Argument(help="What you are looking for, in your own words.")],
    k: Annotated[int, typer.Option("-k", "--top", help="Number of hits (1-100).")] = 5,
    mode: Annotated[
        SearchMode | None,
        typer.Option(help="dense, sparse (keywords) or hybrid; default hybrid where keyword vectors exist."),
    ] = None,
    fusion: Annotated[Fusion, typer.Option(help="How runs and collections are merged: rrf or dbsf.")] = Fusion.DBSF,
    weights: Annotated[
        str | None, typer.Option(help="Per retriever, e.g. dense=1,sparse=0.5 (only the mode's retrievers).")
    ] = None,
    rrf_k: Annotated[int, typer.Option("--rrf-k", help="RRF's k.")] = DEFAULT_RRF_K,
    prefetch: Annotated[int, typer.Option(help="Chunks each retriever hands to fusion.")] = DEFAULT_PREFETCH,
    rerank: Annotated[
        bool | None, typer.Option("--rerank/--no-rerank", help="Rerank with the configured cross-encoder.")
    ] = None,
    feedback: Annotated[
        int, typer.Option(help="Hybrid: best fused chunks that move the dense query (pseudo-relevance feedback).")
    ] = DEFAULT_FEEDBACK,
    threshold: Annotated[float | None, typer.Option(help="Drop hits scoring below this, on the mode's scale.")] = None,
    path_prefix: Annotated[str | None, typer.Option(help="Only files under this folder.")] = None,
    ext: Annotated[list[str] | None, typer.Option(help="Only files with this extension (repeat).")] = None,
    per_document: Annotated[int, typer.Option("--per-document", help="Hits allowed from one file (0: no limit).")] = 1,
    explain: Annotated[bool, typer.Option(help="Show where each retriever ranked each hit.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the REST API's JSON (explain included).")] = False,
) -> None:
    """Search one or more collections and print ranked hits."""
    from semantik.core.services.search import SearchOptions, search_collections
    from semantik.gateway.routers.search import search_out

    names = [name.strip() for name in collection.split(",") if name.strip()]
    options = SearchOptions(
        mode=mode,
        fusion=fusion,
        rrf_k=rrf_k,
        weights=parse_weights(weights),
        prefetch=prefetch,
        score_threshold=threshold,
        search_filter=SearchFilter(path_prefix, tuple(ext or ())),
        per_document=per_document or None,
        rerank=rerank,
        feedback=feedback,
    )
    started = time.perf_counter()
    result = await search_collections(semantik, names, query, k=k, options=options)
    took = time.perf_counter() - started
    if as_json:
        body = search_out(result, names, query, took, single=len(names) == 1)
        sys.stdout.write(body.model_dump_json(indent=2) + "\n")
        return
    for note in result.notes:
        err.print(f"[yellow]note:[/] {note}", highlight=False)
    if not result.hits:
        out.print("No hits.")
        return
    for rank, hit in enumerate(result.hits, 1):
        title = Text.assemble((f"{rank}. ", "bold"), (f"{hit.score:.3f}", "cyan"), "  ")
        if len(names) > 1:
            title.append(f"{hit.collection}: ", style="blue")
        title.append(hit.path, style="bold green")
        if hit.heading:
            title.append(f"  § {hit.heading}", style="magenta")
        out.print(title)
        if explain:
            parts = [f"{c.retriever} #{c.rank} ({c.score:.3f})" for c in hit.explain]
            out.print(Text("   " + " · ".join(parts), style="dim"))
        snippet = Text(hit.snippet)
        for begin, end in hit.highlights:
            snippet.stylize("bold yellow", begin, end)
        out.print(snippet, soft_wrap=False)
        out.print()


def parse_weights(text: str | None) -> dict[str, float] | None:
    """`dense=1,sparse=0.5` as a mapping; the search service checks the names against the mode."""
    if not text:
        return None
    weights = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            if not sep:
                raise ValueError(part)
            weights[name.strip()] = float(value)
        except ValueError:
            raise InvalidInputError(
                f"--weights takes retriever=number pairs separated by commas, e.g. dense=1,sparse=0.5; got {text!r}",
                field="weights",
            ) from None
    return weights


@collections_app.command("list")
@async_command
async def collections_list(semantik: Semantik) -> None:
    """List collections with their document and chunk counts."""
    from semantik.core.services.collections import list_collections

    rows = await list_collections(semantik)
    if not rows:
        out.print("No collections yet. Create one with: semantik index PATH --collection NAME")
        return
    table = Table("NAME", "DOCUMENTS", "FAILED", "CHUNKS", "MODEL", "LAST INDEXED")
    for row in rows:
        table.add_row(
            row.name,
            str(row.documents),
            str(row.failed_documents),
            str(row.chunks),
            row.model,
            _when(row.last_indexed_at),
        )
    out.print(table)


@collections_app.command("show")
@async_command
async def collections_show(semantik: Semantik, name: str) -> None:
    """Show one collection's settings, counts and failed documents."""
    from semantik.core.services.collections import get_collection, list_failed_documents

    view = await get_collection(semantik, name)
    out.print(f"[bold]{view.name}[/]  {view.description}")
    for label, value in (
        ("source", view.source_path or "-"),
        ("include", ", ".join(view.include)),
        ("exclude", ", ".join(view.exclude) or "-"),
        ("model", f"{view.model} ({view.dimension} dims)"),
        (
            "chunking",
            f"{view.chunking.strategy} {view.chunking.chunk_size} tokens, overlap {view.chunking.chunk_overlap}",
        ),
        ("documents", f"{view.documents} ({view.indexed_documents} indexed, {view.failed_documents} failed)"),
        ("chunks", str(view.chunks)),
        ("store", view.qdrant_collection),
        ("created", _when(view.created_at)),
        ("last indexed", _when(view.last_indexed_at)),
    ):
        out.print(f"  {label:<13}{value}", highlight=False)
    for path, reason in await list_failed_documents(semantik, name):
        out.print(f"  [yellow]failed[/] {path}: {reason}", highlight=False)


@collections_app.command("delete")
@async_command
async def collections_delete(
    semantik: Semantik,
    name: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a collection: its store collection and all its metadata."""
    from semantik.core.services.collections import delete_collection, load_collection

    await load_collection(semantik, name)
    if not yes and not typer.confirm(f"Delete collection {name!r} and its index?"):
        raise typer.Exit(EXIT_FAILED)
    await delete_collection(semantik, name)
    out.print(f"Deleted collection {name}.")


@keys_app.command("create")
@async_command
async def keys_create(
    semantik: Semantik,
    name: str,
    role: Annotated[str, typer.Option(help="read, write or admin.")] = "admin",
    collections: Annotated[
        str, typer.Option(help="Comma-separated collection names or patterns (* and ?) the key may act on.")
    ] = "*",
    expires_in_days: Annotated[int | None, typer.Option(min=1, help="Days until the key stops working.")] = None,
) -> None:
    """Create an API key; it is printed once and stored only as a hash."""
    from semantik.core.access import Role
    from semantik.core.services.keys import create_key

    if role not in {member.value for member in Role}:
        raise InvalidInputError(f"--role must be read, write or admin, not {role!r}", field="role")
    expires_at = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    scopes = tuple(part.strip() for part in collections.split(",") if part.strip())
    key, view = await create_key(semantik, name, role=Role(role), scopes=scopes, expires_at=expires_at)
    err.print(
        f"Created API key {view.id} ({view.name}, {view.role.value} on {', '.join(view.scopes)}). "
        "Store it now: it will not be shown again."
    )
    sys.stdout.write(key + "\n")


@keys_app.command("list")
@async_command
async def keys_list(semantik: Semantik) -> None:
    """List API keys (never the keys themselves)."""
    from semantik.core.services.keys import list_keys

    table = Table("ID", "NAME", "PREFIX", "ROLE", "COLLECTIONS", "CREATED", "EXPIRES", "LAST USED", "REVOKED")
    for key in await list_keys(semantik):
        table.add_row(
            str(key.id),
            key.name,
            key.prefix + "…",
            key.role.value,
            ",".join(key.scopes),
            _when(key.created_at),
            _when(key.expires_at),
            _when(key.last_used_at),
            "yes" if key.revoked else "",
        )
    out.print(table)


@keys_app.command("revoke")
@async_command
async def keys_revoke(semantik: Semantik, key_id: int) -> None:
    """Revoke an API key by id."""
    from semantik.core.services.keys import revoke_key

    await revoke_key(semantik, key_id)
    out.print(f"Revoked API key {key_id}.")


@store_app.command("migrate")
def store_migrate() -> None:
    """Copy the local-mode store (<data_dir>/qdrant) into the edge store, verify it, and move the old one aside.

    Embedded mode does this by itself on first open; this runs it alone, printing its progress."""
    from semantik.core.store.migrate import MigrationProgress, migrate_store

    settings = Settings()
    configure_logging("WARNING" if settings.log_level.upper() == "INFO" else settings.log_level)
    source, target = settings.resolved_qdrant_path, settings.data_dir / EDGE_STORE_DIR
    shown_at = 0.0

    def show(progress: MigrationProgress) -> None:
        # A line a second at most, and each collection's first and last, so a log stays short.
        nonlocal shown_at
        now = time.monotonic()
        if progress.copied in (0, progress.total) or now - shown_at >= 1.0:
            shown_at = now
            out.print(f"{progress.collection}: {progress.copied:,}/{progress.total:,} points", highlight=False)

    try:
        report = asyncio.run(migrate_store(source, target, on_progress=show))
    except SemantikError as exc:
        raise fail(exc.message, EXIT_FAILED) from None
    except Exception as exc:
        raise fail(f"migration failed, the local-mode store left as it was: {exc}", EXIT_FAILED) from exc
    out.print(
        f"Migrated {len(report.copied.counts)} collections ({report.points:,} points) into {target}; "
        f"the local-mode store is kept at {report.retired}.",
        highlight=False,
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default SEMANTIK_HOST, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default SEMANTIK_PORT, 8080).")] = None,
    mode: Annotated[
        Mode | None,
        typer.Option(help="embedded: index inside this process; service: queue on Redis for `semantik worker`."),
    ] = None,
) -> None:
    """Serve the gateway's REST API over the same data."""
    import uvicorn

    from semantik.gateway.app import create_app

    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if mode is not None:
        overrides["mode"] = mode
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise fail(_message(exc), EXIT_USAGE) from None
    configure_logging(settings.log_level)
    # The progress WebSocket takes at most a 16 KiB first message: refuse bigger frames at the socket.
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        root_path=settings.root_path,
        log_config=None,
        ws="websockets-sansio",
        ws_max_size=64 * 1024,
    )


@app.command()
def embedder(
    host: Annotated[str | None, typer.Option(help="Address to bind (SEMANTIK_EMBEDDER_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (SEMANTIK_EMBEDDER_PORT, 8000).")] = None,
    model: Annotated[Path | None, typer.Option(help="Model directory (SEMANTIK_EMBEDDER_MODEL_PATH).")] = None,
    model_name: Annotated[str | None, typer.Option(help="Name in the model table.")] = None,
    dtype: Annotated[Precision | None, typer.Option(help="float32, float16, bfloat16 or int8.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda.")] = None,
    backend: Annotated[
        EmbedBackend | None, typer.Option(help="torch or onnx: ONNX Runtime on the CPU (SEMANTIK_EMBED_BACKEND).")
    ] = None,
) -> None:
    """Serve the embedding model over HTTP (POST /embed) with dynamic batching."""
    import uvicorn

    from semantik.embedder.app import create_embedder_app
    from semantik.embedder.settings import EmbedderSettings

    given: dict[str, Any] = {
        "host": host,
        "port": port,
        "model_path": model,
        "model_name": model_name,
        "dtype": dtype,
        "device": device,
        "backend": backend,
    }
    try:
        settings = EmbedderSettings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        raise fail(_message(exc), EXIT_USAGE) from None
    configure_logging(settings.log_level)
    uvicorn.run(create_embedder_app(settings), host=settings.host, port=settings.port, log_config=None, ws="none")


@app.command()
def worker(
    queue: Annotated[
        str | None,
        typer.Option(help="Serve only this queue (semantik:job:<operation>); default: every queue."),
    ] = None,
    burst: Annotated[bool, typer.Option(help="Exit when the work is done (a Kubernetes Job's workers).")] = False,
    check: Annotated[bool, typer.Option(help="Exit 0 if this host's worker is alive (a liveness probe).")] = False,
) -> None:
    """Run an index worker: takes jobs from Redis, hands finished batches to the gateway."""
    from semantik.worker import main as worker_main
    from semantik.worker.config import WorkerConfig

    try:
        config = WorkerConfig()
    except ValidationError as exc:
        raise fail(_message(exc), EXIT_USAGE) from None
    configure_logging(Settings().log_level)
    if check:
        raise typer.Exit(asyncio.run(worker_main.check(config, queue)))
    try:
        asyncio.run(worker_main.run_worker(config, queue=queue, burst=burst))
    except worker_main.StartupError as exc:
        raise fail(str(exc), EXIT_FAILED) from None


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def main() -> None:
    app()


if __name__ == "__main__":
    main()
