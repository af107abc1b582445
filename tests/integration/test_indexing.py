"""Index a real corpus and search it, on SQLite and on PostgreSQL, with the real model."""

from __future__ import annotations

import shutil
from pathlib import Path

from semantik.core.context import Semantik
from semantik.core.services import collections, search
from semantik.core.store.vectors import SearchFilter
from tests.integration.conftest import CountingEmbedder
from tests.support.corpus import write_pdf
from tests.support.indexing import expected_chunks, index_folder, point_count

KNOWN_ANSWERS = [
    ("what must I include in a NOTICE file when I redistribute", "licenses/Apache-2.0"),
    ("how do I rotate API keys", "handbook/keys.md"),
    ("when are expense reports due", "handbook/expenses.pdf"),
    ("how often do engineers get a new laptop", "handbook/laptops.docx"),
    ("the pager fires at night, how fast must I acknowledge", "handbook/oncall.html"),
    ("waive all copyright and dedicate the work to the public domain", "licenses/CC0-1.0"),
]


async def top_paths(app: Semantik, query: str, k: int = 3, **kwargs: object) -> list[str]:
    result = await search.search(app, "docs", query, k=k, options=search.SearchOptions(**kwargs))  # type: ignore[arg-type]
    return [hit.path for hit in result.hits]


async def test_index_then_search_finds_known_answers(semantik: Semantik, corpus: Path) -> None:
    report = await index_folder(semantik, "docs", corpus)

    assert report.failures == []
    files = [p for p in corpus.rglob("*") if p.is_file()]
    assert report.progress.files_processed == len(files)
    for query, expected in KNOWN_ANSWERS:
        assert expected in await top_paths(semantik, query), query
    view = await collections.get_collection(semantik, "docs")
    assert view.documents == len(files) and view.failed_documents == 0
    assert view.chunks == await point_count(semantik, "docs") == report.progress.chunks
    # The HTML's script and navigation are not indexed, its paragraphs are.
    hits = (await search.search(semantik, "docs", "acknowledge the alert", k=20)).hits
    assert not any("tracking" in hit.text for hit in hits)


async def test_filters_limit_hits_to_a_folder_or_extension(semantik: Semantik, corpus: Path) -> None:
    await index_folder(semantik, "docs", corpus)

    under = await top_paths(semantik, "license to redistribute", k=10, search_filter=SearchFilter("handbook"))
    assert under and all(path.startswith("handbook/") for path in under)
    markdown = await top_paths(semantik, "anything", k=10, search_filter=SearchFilter(None, ("md",)))
    assert markdown and set(markdown) == {"handbook/keys.md"}
    no_extension = await top_paths(semantik, "copyright", k=10, search_filter=SearchFilter("licenses", ("",)))
    assert no_extension and all(path.startswith("licenses/") for path in no_extension)
    one_file = await top_paths(semantik, "backups", k=10, search_filter=SearchFilter("handbook/keys.md"))
    assert set(one_file) == {"handbook/keys.md"}


async def test_reindexing_an_unchanged_folder_computes_no_embeddings(
    semantik: Semantik, corpus: Path, embedder: CountingEmbedder
) -> None:
    first = await index_folder(semantik, "docs", corpus)
    points = await point_count(semantik, "docs")
    assert embedder.texts == first.progress.chunks > 0

    embedder.texts = 0
    second = await index_folder(semantik, "docs", corpus)

    assert embedder.texts == 0
    assert not second.changed
    assert second.progress.files_unchanged == first.progress.files_total
    assert await point_count(semantik, "docs") == points


async def test_editing_one_file_reembeds_only_its_chunks(
    semantik: Semantik, corpus: Path, embedder: CountingEmbedder
) -> None:
    await index_folder(semantik, "docs", corpus)
    before = await point_count(semantik, "docs")
    keys = corpus / "handbook" / "keys.md"
    old_chunks = await point_count(semantik, "docs", "handbook/keys.md")
    keys.write_text(keys.read_text() + "\n## Laptops at the office\n\n" + "Badges open the door at seven. " * 120)
    new_chunks = await expected_chunks(semantik, "docs", keys)
    assert new_chunks > old_chunks

    embedder.texts = 0
    report = await index_folder(semantik, "docs", corpus)

    assert embedder.texts == new_chunks
    assert report.progress.files_processed - report.progress.files_unchanged == 1
    assert await point_count(semantik, "docs", "handbook/keys.md") == new_chunks
    assert await point_count(semantik, "docs") == before - old_chunks + new_chunks
    assert (await top_paths(semantik, "what time do badges open the door", k=1)) == ["handbook/keys.md"]


async def test_shrinking_a_file_drops_its_surplus_points(semantik: Semantik, corpus: Path) -> None:
    await index_folder(semantik, "docs", corpus)
    before = await point_count(semantik, "docs")
    gpl = await point_count(semantik, "docs", "licenses/GPL-3")
    assert gpl > 5
    (corpus / "licenses" / "GPL-3").write_text("This license was replaced by a one-line note.\n")

    await index_folder(semantik, "docs", corpus)

    assert await point_count(semantik, "docs", "licenses/GPL-3") == 1
    assert await point_count(semantik, "docs") == before - gpl + 1
    view = await collections.get_collection(semantik, "docs")
    assert view.chunks == before - gpl + 1


async def test_deleting_a_file_removes_its_points_and_row(semantik: Semantik, corpus: Path) -> None:
    await index_folder(semantik, "docs", corpus)
    before = await point_count(semantik, "docs")
    apache = await point_count(semantik, "docs", "licenses/Apache-2.0")
    (corpus / "licenses" / "Apache-2.0").unlink()

    report = await index_folder(semantik, "docs", corpus)

    assert report.progress.files_removed == 1
    assert await point_count(semantik, "docs", "licenses/Apache-2.0") == 0
    assert await point_count(semantik, "docs") == before - apache
    paths = {doc.path for doc in await collections.list_documents(semantik, "docs")}
    assert "licenses/Apache-2.0" not in paths
    assert "licenses/Apache-2.0" not in await top_paths(semantik, "NOTICE file redistribution", k=10)


async def test_bad_files_are_recorded_as_failed_and_the_rest_is_indexed(semantik: Semantik, corpus: Path) -> None:
    bad = corpus / "bad"
    bad.mkdir()
    (bad / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage without xref")
    (bad / "photo.jpg").write_bytes(bytes(range(256)) * 40)
    (bad / "empty.txt").write_bytes(b"")

    report = await index_folder(semantik, "docs", corpus)

    failed = {failure.path: failure.reason for failure in report.failures}
    assert set(failed) == {"bad/broken.pdf", "bad/photo.jpg", "bad/empty.txt"}
    assert "pdf" in failed["bad/broken.pdf"].lower()
    assert "binary" in failed["bad/photo.jpg"].lower()
    assert "empty" in failed["bad/empty.txt"].lower()
    recorded = dict(await collections.list_failed_documents(semantik, "docs"))
    assert recorded == failed
    assert "licenses/Apache-2.0" in await top_paths(semantik, KNOWN_ANSWERS[0][0])
    assert await point_count(semantik, "docs", "bad") == 0

    again = await index_folder(semantik, "docs", corpus)
    assert not again.changed
    assert {f.path for f in again.still_failing} == set(failed)


async def test_a_file_that_turns_corrupt_keeps_its_indexed_chunks(semantik: Semantik, corpus: Path) -> None:
    await index_folder(semantik, "docs", corpus)
    pdf = corpus / "handbook" / "expenses.pdf"
    indexed = await point_count(semantik, "docs", "handbook/expenses.pdf")
    assert indexed >= 1
    pdf.write_bytes(pdf.read_bytes()[:200])

    report = await index_folder(semantik, "docs", corpus)

    assert [f.path for f in report.failures] == ["handbook/expenses.pdf"]
    assert await point_count(semantik, "docs", "handbook/expenses.pdf") == indexed
    assert "handbook/expenses.pdf" in await top_paths(semantik, "when are expense reports due")

    write_pdf(pdf, ["Expense reports are now due on the tenth working day."])
    await index_folder(semantik, "docs", corpus)
    assert dict(await collections.list_failed_documents(semantik, "docs")) == {}


async def test_full_reindex_recomputes_everything_without_duplicates(
    semantik: Semantik, corpus: Path, embedder: CountingEmbedder
) -> None:
    first = await index_folder(semantik, "docs", corpus)
    points = await point_count(semantik, "docs")

    embedder.texts = 0
    await index_folder(semantik, "docs", corpus, full=True)

    assert embedder.texts == first.progress.chunks
    assert await point_count(semantik, "docs") == points


async def test_moving_a_file_moves_its_points(semantik: Semantik, corpus: Path) -> None:
    await index_folder(semantik, "docs", corpus)
    points = await point_count(semantik, "docs")
    target = corpus / "archive"
    target.mkdir()
    shutil.move(corpus / "handbook" / "vacation.txt", target / "vacation.txt")

    await index_folder(semantik, "docs", corpus)

    assert await point_count(semantik, "docs", "handbook/vacation.txt") == 0
    assert await point_count(semantik, "docs", "archive/vacation.txt") == 1
    assert await point_count(semantik, "docs") == points
