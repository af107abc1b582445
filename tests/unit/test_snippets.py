from __future__ import annotations

from semantik.core.search.analyzer import Analyzer
from semantik.core.search.snippets import SNIPPET_CHARS, make_snippet
from semantik.core.store.vectors import SearchFilter, ancestor_dirs, build_filter, extension_of


def snippet_for(text: str, query: str, language: str = "english", width: int = SNIPPET_CHARS) -> tuple[str, list[str]]:
    """The snippet and its marked words, for a query analysed as the search analyses it."""
    analyzer = Analyzer(language)
    snippet, spans = make_snippet(text, analyzer.terms(query), analyzer, width)
    return snippet, [snippet[a:b] for a, b in spans]


def test_snippet_centres_on_the_query_words_and_marks_them() -> None:
    text = ("filler words here. " * 40) + "You must include a readable copy of the NOTICE file. " + ("more text. " * 40)
    snippet, marked = snippet_for(text, "NOTICE file", width=200)
    assert "NOTICE file" in snippet
    assert snippet.startswith("…") and snippet.endswith("…")
    assert marked == ["NOTICE", "file"]


def test_short_text_is_the_whole_snippet() -> None:
    snippet, marked = snippet_for("Rotate keys  every\n90 days.", "rotate keys")
    assert snippet == "Rotate keys every 90 days."
    assert marked == ["Rotate", "keys"]


def test_inflections_of_a_query_word_are_marked() -> None:
    _, marked = snippet_for("Key rotation: ROTATE the keys, rotated keys, a rotary dial.", "rotating key")
    assert marked == ["Key", "rotation", "ROTATE", "keys", "rotated", "keys"]


def test_stopwords_are_never_marked() -> None:
    _, marked = snippet_for("The keys of the vault and the rotation of the keys.", "the keys of the vault")
    assert marked == ["keys", "vault", "keys"]
    assert snippet_for("The keys of the vault.", "the of and")[1] == []


def test_unicode_spellings_are_marked_as_the_same_word() -> None:
    _, marked = snippet_for("Die STRASSE und die Straße, Straßen und Strassen.", "straße", language="german")
    assert marked == ["STRASSE", "Straße", "Straßen", "Strassen"]
    _, marked = snippet_for("Les élèves, ÉLÈVES et e\u0301le\u0300ves.", "élève", language="french")
    assert marked == ["élèves", "ÉLÈVES", "e\u0301le\u0300ves"]
    _, marked = snippet_for("Ｆｕｌｌ-width ﬁles and FILES.", "full file")
    assert marked == ["Ｆｕｌｌ", "ﬁles", "FILES"]


def test_snippet_window_starts_before_the_densest_run_of_query_words() -> None:
    lone = "keys " + "filler text goes on. " * 30
    dense = "rotate keys, rotate keys and rotate keys again. "
    text = lone + dense + "more filler here. " * 30
    snippet, marked = snippet_for(text, "rotate keys", width=100)
    # A quarter of the width before the first word of the densest run, which holds six of the words.
    start = len(lone) - 25
    assert snippet == "…" + " ".join(text[start : start + 100].split()) + "…"
    assert marked == ["rotate", "keys"] * 3


def test_a_word_the_window_cuts_is_not_marked() -> None:
    dense = "keys keys keys"
    # The window starts inside "unrotated", leaving "rotated", which alone would match.
    text = "z " * 100 + "unrotated" + " " * 18 + dense + " z" * 100
    snippet, marked = snippet_for(text, "rotate keys", width=100)
    assert snippet.startswith("…rotated ")
    assert marked == ["keys"] * 3
    # It ends inside "keystone", leaving "keys".
    text = "z " * 100 + dense + " " * 57 + "keystone" + " z" * 100
    snippet, marked = snippet_for(text, "rotate keys", width=100)
    assert snippet.endswith(" keys…")
    assert marked == ["keys"] * 3


def test_a_huge_chunk_gives_a_bounded_snippet() -> None:
    text = "x" * 4_000_000 + " rotate the keys"
    snippet, _ = snippet_for(text, "rotate keys")
    assert len(snippet) <= SNIPPET_CHARS + 2
    assert snippet.endswith("…")


def test_no_query_terms_gives_the_start_of_the_text() -> None:
    text = "Opening words. " + "more words " * 100
    snippet, marked = snippet_for(text, "the and of", width=50)
    assert snippet == " ".join(text[:50].split()) + "…"
    assert marked == []


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
