"""What the search page shows, from search results: highlight segments, files, links and phases."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from semantik.core.settings import Settings
from semantik.gateway.schemas import HitOut
from semantik.gateway.ui.views import Segment, group_by_document, phase, segments, source_link, source_url_for


def hit(collection: str, path: str, index: int, score: float) -> HitOut:
    return HitOut(
        collection=collection,
        score=score,
        path=path,
        chunk_index=index,
        snippet="",
        highlights=[],
        text="",
        start=0,
        end=0,
        heading=None,
        explain=[],
    )


def test_segments_mark_the_spans_and_keep_every_character() -> None:
    assert segments("rotate the keys", [(0, 6), (11, 15)]) == [
        Segment("rotate", True),
        Segment(" the ", False),
        Segment("keys", True),
    ]


@pytest.mark.parametrize(
    "spans",
    [[(4, 9), (0, 6)], [(0, 6), (3, 9)], [(10, 400)], [(7, 3)], [(-5, 2)]],
    ids=["out of order", "overlapping", "past the end", "reversed", "negative"],
)
def test_bad_spans_can_lose_a_highlight_but_never_text(spans: list[tuple[int, int]]) -> None:
    text = "rotate the keys"
    parts = segments(text, spans)
    assert "".join(part.text for part in parts) == text


def test_hits_group_per_file_in_rank_order_with_the_best_score() -> None:
    hits = [hit("a", "x.md", 2, 0.9), hit("a", "y.md", 0, 0.8), hit("a", "x.md", 5, 0.7), hit("b", "x.md", 0, 0.6)]
    groups = group_by_document(hits, {})
    assert [(g.collection, g.path, g.score) for g in groups] == [
        ("a", "x.md", 0.9),
        ("a", "y.md", 0.8),
        ("b", "x.md", 0.6),
    ]
    assert [h.chunk_index for h in groups[0].hits] == [2, 5]


def test_source_links_encode_the_path_and_follow_the_configured_patterns() -> None:
    urls = {"handbook": "https://git.example.com/hb/blob/main/", "team-*": "https://files.example.com/team"}
    assert source_url_for("handbook", urls) == "https://git.example.com/hb/blob/main/"
    assert source_url_for("team-ops", urls) == "https://files.example.com/team"
    assert source_url_for("other", urls) is None
    # A file name cannot add a query, a fragment or a scheme to the link.
    assert (
        source_link(urls["handbook"], "guides/a b?#.md") == "https://git.example.com/hb/blob/main/guides/a%20b%3F%23.md"
    )
    assert source_link(None, "x.md") is None


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "data:text/html,x", 'https://x.example.com/"onmouseover=x', "ftp://x"]
)
def test_source_urls_must_be_plain_http(url: str) -> None:
    with pytest.raises(ValidationError, match="ui_source_urls"):
        Settings(ui_source_urls={"handbook": url})


def test_oidc_sign_in_needs_the_issuer_and_both_endpoints() -> None:
    with pytest.raises(ValidationError, match="OIDC_ISSUER"):
        Settings(oidc_client_id="semantik")


def test_phase_of_a_collection() -> None:
    assert phase(active=True, reindex=False, documents=3, indexed=3, failed=0) == "Indexing"
    assert phase(active=False, reindex=True, documents=3, indexed=3, failed=0) == "Reindex pending"
    assert phase(active=False, reindex=False, documents=0, indexed=0, failed=0) == "Empty"
    assert phase(active=False, reindex=False, documents=2, indexed=0, failed=2) == "Failed"
    assert phase(active=False, reindex=False, documents=2, indexed=1, failed=1) == "Ready"
