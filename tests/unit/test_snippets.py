from __future__ import annotations

from semantik.core.services.search import MAX_SNIPPET_TERMS, SNIPPET_CHARS, make_snippet, query_terms
from semantik.core.store.vectors import SearchFilter, ancestor_dirs, build_filter, extension_of


def test_query_terms_drop_stopwords_and_short_words() -> None:
    assert query_terms("What must I include in a NOTICE file?") == ["include", "notice", "file"]


def test_snippet_centres_on_the_query_words_and_marks_them() -> None:
    text = ("filler words here. " * 40) + "You must include a readable copy of the NOTICE file. " + ("more text. " * 40)
    snippet, spans = make_snippet(text, "NOTICE file", width=200)
    assert "NOTICE file" in snippet
    assert snippet.startswith("…") and snippet.endswith("…")
    marked = {snippet[a:b].lower() for a, b in spans}
    assert {"notice", "file"} <= marked


def test_short_text_is_the_whole_snippet() -> None:
    snippet, spans = make_snippet("Rotate keys  every\n90 days.", "rotate keys")
    assert snippet == "Rotate keys every 90 days."
    assert [snippet[a:b] for a, b in spans] == ["Rotate", "keys"]


def test_snippet_window_starts_before_the_densest_run_of_query_words() -> None:
    lone = "keys " + "filler text goes on. " * 30
    dense = "rotate keys, rotate keys and rotate keys again. "
    text = lone + dense + "more filler here. " * 30
    snippet, spans = make_snippet(text, "rotate keys", width=100)
    # A quarter of the width before the first word of the densest run, which holds six of the words.
    start = len(lone) - 25
    assert snippet == "…" + " ".join(text[start : start + 100].split()) + "…"
    assert sum(1 for a, b in spans if snippet[a:b].lower() in {"rotate", "keys"}) == 6


def test_snippet_marks_words_that_start_with_a_query_word_whatever_their_case() -> None:
    snippet, spans = make_snippet("NOTICES and notice_file, but not prenotice or profile.", "notice file")
    assert [snippet[a:b] for a, b in spans] == ["NOTICES", "notice_file"]


def test_a_huge_chunk_gives_a_bounded_snippet() -> None:
    text = "x" * 4_000_000 + " rotate the keys"
    snippet, _ = make_snippet(text, "rotate keys")
    assert len(snippet) <= SNIPPET_CHARS + 2
    assert snippet.endswith("…")


def test_many_query_words_are_bounded() -> None:
    query = " ".join(f"term{i:04}" for i in range(1000))
    snippet, spans = make_snippet("term0001 and term0999 and term0005", query)
    # Only the first MAX_SNIPPET_TERMS distinct query words are looked for.
    assert MAX_SNIPPET_TERMS < 999
    assert [snippet[a:b] for a, b in spans] == ["term0001", "term0005"]


def test_path_helpers() -> None:
    assert ancestor_dirs("a/b/c.md") == ["a", "a/b"]
    assert ancestor_dirs("LICENSE") == []
    assert extension_of("docs/Guide.MD") == "md"
    assert extension_of("LICENSE") == ""
    assert extension_of("dir.d/Makefile") == ""


def test_filters() -> None:
    assert build_filter(SearchFilter()) is None
    built = build_filter(SearchFilter("docs/", (".MD",)))
    assert built is not None and built.must is not None
    assert len(built.must) == 2  # type: ignore[arg-type]
