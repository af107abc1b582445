from __future__ import annotations

import bm25s
import pytest
import Stemmer
from pydantic import ValidationError

from semantik.core.errors import InvalidInputError
from semantik.core.search.analyzer import LANGUAGES, MAX_WORD_CHARS, Analyzer, analyzer_for, fold, term_id
from semantik.core.services.collections import CollectionSpec, SearchSpec

# Varied English: contractions, numbers, hyphens, identifiers, URLs, possessives, one-letter words, capitals.
ENGLISH = """\
The Apache License, Version 2.0 (the "License"); you may not use this file except in compliance with the License.
You must give any other recipients of the Work or Derivative Works a copy of this License; and you must cause any
modified files to carry prominent notices stating that You changed the files.
Rotate the signing keys every 90 days. Rotation is automatic when SEMANTIK_KEY_ROTATION_DAYS is set; a rotated
key stays valid for 24 hours so clients that cached it don't fail mid-request.
An experimental study of a wing in a propeller slipstream was made in order to determine the spanwise
distribution of the lift increase due to slipstream at different angles of attack of the wing.
It's 3.14 o'clock at https://example.org/docs/v2/index.html?q=search_terms&page=2 — isn't it? Mr. O'Neil's
cat_and_dog variable, x86-64 builds, e-mail addresses like ops@example.com, and the U.S.A. all appear here.
The quick brown fox jumps over the lazy dog; THE QUICK BROWN FOX JUMPED OVER LAZY DOGS, quickly and lazily.
Investigations of boundary-layer transition at supersonic speeds showed that heat transfer rates increase
sharply downstream; these investigations were repeated, investigated again and re-investigated in 1958.
Connecting, connected, connection, connections and connective: Porter's classic example of conflation.
Generalizations, generalization, generally, general, generous and generate are not all the same stem.
"""


def test_a_collection_may_name_only_the_analyzers_languages() -> None:
    assert CollectionSpec(name="x", search=SearchSpec(language="german")).search.language == "german"
    with pytest.raises(ValidationError, match=r"search\.language"):
        CollectionSpec.model_validate({"name": "x", "search": {"language": "klingon"}})
    for language in LANGUAGES:
        assert Analyzer(language).language == language


def test_english_terms_match_bm25s_tokenizer() -> None:
    # The sparse retrieval is measured against bm25s: the same text must give the same terms.
    lines = ENGLISH.splitlines()
    theirs = bm25s.tokenize(
        lines, lower=True, stopwords="en", stemmer=Stemmer.Stemmer("english"), return_ids=False, show_progress=False
    )
    ours = [Analyzer("english").terms(line) for line in lines]
    assert ours == theirs
    assert sum(map(len, ours)) > 150


def test_inflections_share_a_term() -> None:
    analyzer = Analyzer()
    assert analyzer.terms("rotating rotation rotated ROTATES") == ["rotat"] * 4


@pytest.mark.parametrize(
    ("language", "stopword", "inflections"),
    [
        ("danish", "og", ["bilen", "bilerne", "biler"]),
        ("dutch", "het", ["werken", "werkt"]),
        ("english", "the", ["connecting", "connection"]),
        ("french", "les", ["chanter", "chanté"]),
        ("german", "und", ["Häuser", "Hauses", "Haus"]),
        ("italian", "della", ["parlare", "parlano", "parlato"]),
        ("norwegian", "og", ["bilen", "bilene", "biler"]),
        ("portuguese", "não", ["falando", "falar", "falou"]),
        ("russian", "не", ["книги", "книгой", "книга"]),
        ("spanish", "los", ["hablando", "hablar", "habló"]),
        ("swedish", "och", ["bilar", "bilarna", "bilen"]),
        ("turkish", "için", ["kitaplar", "kitaplardan", "kitap"]),
    ],
)
def test_each_language_drops_its_stopwords_and_stems_its_words(
    language: str, stopword: str, inflections: list[str]
) -> None:
    analyzer = Analyzer(language)
    assert analyzer.terms(stopword) == []
    assert analyzer.terms(stopword.upper()) == []
    terms = analyzer.terms(" ".join(inflections))
    assert len(terms) == len(inflections) and len(set(terms)) == 1


def test_a_stopword_of_one_language_is_a_term_in_another() -> None:
    assert Analyzer("german").terms("und") == []
    assert Analyzer("english").terms("und") == ["und"]


def test_unicode_forms_fold_to_the_same_terms() -> None:
    analyzer = Analyzer()
    assert analyzer.terms("ＡＢＣ") == analyzer.terms("abc") == ["abc"]
    assert analyzer.terms("ﬁle") == analyzer.terms("FILE") == ["file"]
    # Case folding (not lower()) maps ß to ss, so both spellings of the street meet.
    assert fold("Straße") == fold("STRASSE") == "strasse"
    assert Analyzer("german").terms("Straße") == Analyzer("german").terms("STRASSE") == ["strass"]
    # A decomposed accent (e + U+0301) composes to the same word as the precomposed one.
    decomposed = "e\u0301le\u0300ves"
    assert Analyzer("french").terms(decomposed) == Analyzer("french").terms("ÉLÈVES") == ["élev"]


def test_spans_refer_to_the_original_text() -> None:
    text = "The ＲＯＴＡＴＩＮＧ keys,\u00a0ﬁles and e\u0301le\u0300ves (½) of Straße!"
    spans = list(Analyzer().word_spans(text))
    assert [(text[a:b], term) for a, b, term in spans] == [
        ("The", None),
        ("ＲＯＴＡＴＩＮＧ", "rotat"),
        ("keys", "key"),
        ("ﬁles", "file"),
        ("and", None),
        # The decomposed accents compose: the term holds U+00E9 and U+00E8.
        ("e\u0301le\u0300ves", "\u00e9l\u00e8ves"),
        # NFKC splits ½ into 1, a fraction slash and 2: one-character pieces, each dropped.
        ("½", None),
        ("½", None),
        ("of", None),
        ("Straße", "strass"),
    ]
    assert [term for _, _, term in spans if term] == Analyzer().terms(text)


def test_one_letter_and_overlong_words_are_dropped() -> None:
    analyzer = Analyzer()
    longest = "k" * MAX_WORD_CHARS
    assert analyzer.terms(f"x {longest} {longest}k ok") == [longest, "ok"]
    huge = "z" * 1_000_000
    assert list(analyzer.word_spans(f"key {huge} key")) == [
        (0, 3, "key"),
        (4, 1_000_004, None),
        (1_000_005, 1_000_008, "key"),
    ]


def test_an_unknown_language_names_the_field() -> None:
    with pytest.raises(InvalidInputError) as caught:
        Analyzer("klingon")
    assert caught.value.field == "language"
    assert "klingon" in caught.value.message


def test_analyzers_are_shared_per_language() -> None:
    assert analyzer_for("german") is analyzer_for("german")
    assert analyzer_for("german").language == "german"
    assert analyzer_for("english") is not analyzer_for("german")


def test_term_ids_never_change() -> None:
    # Every stored sparse vector holds these ids: a different hash would silently break every index.
    assert term_id("rotat") == 3873808105
    assert term_id("key") == 2551124860
    assert term_id("search") == 1179807988
    assert term_id("élev") == 991544344
    assert term_id("книг") == 425151559
