from __future__ import annotations

from semantik.core.services.search import make_snippet, query_terms
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
