from __future__ import annotations

import codecs
import io
import os
import random
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import docx
import pytest
from reportlab.lib.pdfencrypt import StandardEncryption
from reportlab.pdfgen import canvas

from semantik.core.pipeline.extract import (
    SUPPORTED_FORMATS,
    ExtractedText,
    ExtractionError,
    extract,
    read_and_extract,
    read_regular_file,
)
from tests.support.hostile import pdf_with_stream

APACHE_LICENSE = Path("/usr/share/common-licenses/Apache-2.0")
PAGE_ONE = ["The quick brown fox jumps over the lazy dog.", "Semantic search finds meaning, not words."]
PAGE_TWO = ["Kubernetes operators reconcile desired state.", "The second page ends here."]


def make_pdf(pages: list[list[str]], encrypt: str | StandardEncryption | None = None) -> bytes:
    buffer = io.BytesIO()
    document = canvas.Canvas(buffer, encrypt=encrypt)
    for lines in pages:
        for number, line in enumerate(lines):
            document.drawString(72, 720 - 20 * number, line)
        document.showPage()
    document.save()
    return buffer.getvalue()


def make_docx() -> bytes:
    document = docx.Document()
    document.add_heading("Quarterly report", level=1)
    document.add_paragraph("Revenue grew in every region.")
    table = document.add_table(rows=3, cols=3)
    for row, values in enumerate([("Region", "Q1", "Q2"), ("North", "10", "12"), ("South", "7", "9")]):
        for column, value in enumerate(values):
            table.cell(row, column).text = value
    document.add_paragraph("Closing remarks after the table.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def reason_of(data: bytes, filename: str) -> str:
    with pytest.raises(ExtractionError) as caught:
        extract(data, filename)
    return caught.value.reason


def test_supported_formats_cover_every_format_extract_returns() -> None:
    assert set(SUPPORTED_FORMATS) == {"text", "markdown", "html", "pdf", "docx"}


# --- PDF ---------------------------------------------------------------------------------------------


def test_pdf_pages_are_joined_in_order_with_blank_lines() -> None:
    result = extract(make_pdf([PAGE_ONE, PAGE_TWO]), "report.pdf")

    assert result.format == "pdf"
    for sentence in PAGE_ONE + PAGE_TWO:
        assert sentence in result.text
    first, second = result.text.split("\n\n")
    assert PAGE_ONE[0] in first and PAGE_TWO[0] in second


def test_pdf_is_recognised_by_content_without_extension() -> None:
    assert extract(make_pdf([PAGE_ONE]), "scan-0001").format == "pdf"


def test_pdf_without_text_layer_is_an_error() -> None:
    assert reason_of(make_pdf([[]]), "blank.pdf").startswith("PDF has no extractable text")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"%PDF-1.7\n" + random.Random(7).randbytes(4000), id="garbage-after-header"),
        pytest.param(make_pdf([PAGE_ONE, PAGE_TWO])[:600], id="truncated"),
    ],
)
def test_corrupt_pdf_is_an_error(data: bytes) -> None:
    assert reason_of(data, "broken.pdf").startswith("corrupt PDF: ")


def test_pdf_with_a_user_password_is_an_error() -> None:
    data = make_pdf([PAGE_ONE], encrypt="s3cret")

    assert reason_of(data, "locked.pdf") == "encrypted PDF: needs a password"


def test_pdf_encrypted_with_only_an_owner_password_is_read() -> None:
    data = make_pdf([PAGE_ONE], encrypt=StandardEncryption("", ownerPassword="owner"))

    assert PAGE_ONE[0] in extract(data, "protected.pdf").text


def test_damaged_pdfs_and_docx_raise_only_extraction_error() -> None:
    """Truncations and byte flips of valid files: parsers' own exceptions must never escape."""
    rng = random.Random(1234)
    for valid, name in ((make_pdf([PAGE_ONE, PAGE_TWO]), "f.pdf"), (make_docx(), "f.docx")):
        variants = [valid[:cut] for cut in range(16, len(valid), max(1, len(valid) // 40))]
        for _ in range(40):
            mutated = bytearray(valid)
            for _ in range(8):
                mutated[rng.randrange(16, len(mutated))] = rng.randrange(256)
            variants.append(bytes(mutated))
        reasons: list[str] = []
        for data in variants:
            try:
                result = extract(data, name)
            except ExtractionError as exc:
                reasons.append(exc.reason)
            else:
                assert result.text.strip()
        assert reasons, "the damaged variants should exercise the failure paths"
        assert all(reasons)


# --- DOCX --------------------------------------------------------------------------------------------


def test_docx_paragraphs_and_table_rows_come_in_document_order() -> None:
    result = extract(make_docx(), "report.docx")

    assert result.format == "docx"
    assert result.text.split("\n\n") == [
        "Quarterly report",
        "Revenue grew in every region.",
        "Region | Q1 | Q2",
        "North | 10 | 12",
        "South | 7 | 9",
        "Closing remarks after the table.",
    ]


def test_docx_merged_cell_is_listed_once() -> None:
    document = docx.Document()
    table = document.add_table(rows=1, cols=3)
    table.cell(0, 0).merge(table.cell(0, 1)).text = "Spanning title"
    table.cell(0, 2).text = "Spanning title"
    buffer = io.BytesIO()
    document.save(buffer)

    assert extract(buffer.getvalue(), "t.docx").text == "Spanning title | Spanning title"


def test_docx_is_recognised_by_content_without_extension() -> None:
    assert extract(make_docx(), "download").format == "docx"


def test_docx_extension_on_garbage_is_a_corrupt_docx() -> None:
    assert reason_of(random.Random(3).randbytes(3000), "broken.docx").startswith("corrupt DOCX: ")


def test_zip_with_garbage_word_document_is_a_corrupt_docx() -> None:
    data = make_zip({"word/document.xml": b"<w:document><unclosed", "[Content_Types].xml": b"nonsense"})

    assert reason_of(data, "attachment").startswith("corrupt DOCX: ")


def test_docx_that_expands_beyond_the_cap_is_refused_before_parsing() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"<w:document/>")
        with archive.open("word/media/padding.bin", "w", force_zip64=True) as padding:
            for _ in range(300):
                padding.write(bytes(1024 * 1024))

    assert reason_of(buffer.getvalue(), "bomb.docx").startswith("DOCX too large once uncompressed")


def zeros_member(archive: zipfile.ZipFile, name: str, mebibytes: int) -> None:
    with archive.open(name, "w", force_zip64=True) as member:
        for _ in range(mebibytes):
            member.write(bytes(1024 * 1024))


def docx_with(extra: dict[str, int]) -> bytes:
    """A real DOCX plus members of `extra[name]` MiB of zeros, deflated to almost nothing."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(make_docx())) as source,
        zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive,
    ):
        for info in source.infolist():
            archive.writestr(info, source.read(info))
        for name, mebibytes in extra.items():
            zeros_member(archive, name, mebibytes)
    return buffer.getvalue()


def peak_traced_bytes(data: bytes, filename: str) -> tuple[str, int]:
    """The reason extracting `data` fails, and the most memory Python allocated meanwhile."""
    tracemalloc.start()
    try:
        reason = reason_of(data, filename)
        return reason, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_docx_part_that_expands_past_its_cap_stops_while_decompressing() -> None:
    bomb = docx_with({"word/document2.xml": 80})
    assert len(bomb) < 1024 * 1024

    reason, peak = peak_traced_bytes(bomb, "bomb.docx")
    assert reason == (
        "DOCX too large once uncompressed (word/document2.xml is over the 67108864-byte limit for one part)"
    )
    assert peak < 80 * 1024 * 1024


def test_docx_parts_that_expand_past_the_total_cap_stop_while_decompressing() -> None:
    bomb = docx_with({f"word/media/image{i}.png": 60 for i in range(5)})

    reason, peak = peak_traced_bytes(bomb, "bomb.docx")
    assert reason == "DOCX too large once uncompressed (over the 268435456-byte limit)"
    # Media are counted but not kept: the bytes held stay far below what was decompressed.
    assert peak < 32 * 1024 * 1024


def test_a_docx_whose_zip_understates_a_parts_size_is_refused_without_expanding_it() -> None:
    bomb = docx_with({"word/document2.xml": 300})
    # Rewrite the declared size in the local header and the central directory, as a hostile archive would:
    # the member then claims 1 KiB while it inflates to 300 MiB.
    with zipfile.ZipFile(io.BytesIO(bomb)) as archive:
        info = archive.getinfo("word/document2.xml")
    patched = bomb
    for width in (8, 4):  # the local header's ZIP64 field, then the central directory's
        assert patched.count(info.file_size.to_bytes(width, "little")) == 1
        patched = patched.replace(info.file_size.to_bytes(width, "little"), (1024).to_bytes(width, "little"))
    with zipfile.ZipFile(io.BytesIO(patched)) as archive:
        assert archive.getinfo("word/document2.xml").file_size == 1024

    reason, peak = peak_traced_bytes(patched, "liar.docx")
    assert reason.startswith(("corrupt DOCX: ", "DOCX too large once uncompressed"))
    assert peak < 32 * 1024 * 1024


def test_a_docx_with_a_media_part_still_yields_its_text() -> None:
    data = docx_with({"word/media/photo.bin": 2})

    assert "Revenue grew in every region." in extract(data, "report.docx").text


def pdf_with_content(content: bytes) -> bytes:
    return pdf_with_stream(zlib.compress(content, 9))


def test_a_pdf_stream_that_inflates_past_the_limit_fails_the_file() -> None:
    text = b"BT /F1 12 Tf 72 720 Td (Hello) Tj ET\n"
    assert extract(pdf_with_content(text), "small.pdf").text == "Hello"
    bomb = pdf_with_content(text + bytes(200 * 1024 * 1024))
    assert len(bomb) < 1024 * 1024

    reason, peak = peak_traced_bytes(bomb, "bomb.pdf")
    assert reason.startswith("PDF beyond the reader's limits: ")
    assert peak < 100 * 1024 * 1024


def test_other_zip_archives_are_unsupported() -> None:
    data = make_zip({"xl/workbook.xml": b"<workbook/>"})

    assert reason_of(data, "sheet.xlsx") == "unsupported binary format (ZIP archive)"


# --- HTML --------------------------------------------------------------------------------------------

PAGE_HTML = """<!DOCTYPE html>
<html>
<head>
  <title>Release   notes</title>
  <style>body { color: red; } .secret-style { }</style>
  <script>var secretScript = "do not index";</script>
</head>
<body>
  <nav><a href="/">Home</a> <a href="/menu">Navigation menu</a></nav>
  <!-- a comment that is not text -->
  <h1>Version 2.0</h1>
  <p>This release adds
     semantic search across <b>all</b> folders.</p>
  <div>First block</div><div>Second block<br>after a break</div>
  <ul><li>Faster indexing</li><li>Smaller images</li></ul>
  <table><tr><th>Name</th><th>Value</th></tr><tr><td>limit</td><td>10</td></tr></table>
  <noscript>Please enable JavaScript</noscript>
  <template><p>Template content</p></template>
</body>
</html>
"""


def test_html_drops_script_style_and_navigation_and_keeps_the_title() -> None:
    result = extract(PAGE_HTML.encode(), "notes.html")

    assert result.format == "html"
    for dropped in ("secretScript", "secret-style", "Navigation menu", "JavaScript", "Template", "comment"):
        assert dropped not in result.text
    assert result.text.startswith("Release notes\n")


def test_html_block_elements_become_separate_lines() -> None:
    lines = [line for line in extract(PAGE_HTML.encode(), "notes.htm").text.split("\n") if line]

    assert lines == [
        "Release notes",
        "Version 2.0",
        "This release adds semantic search across all folders.",
        "First block",
        "Second block",
        "after a break",
        "Faster indexing",
        "Smaller images",
        "Name | Value",
        "limit | 10",
    ]


def test_html_is_recognised_by_content_without_extension() -> None:
    assert extract(PAGE_HTML.encode(), "index").format == "html"


def test_html_honours_a_declared_legacy_charset() -> None:
    markup = '<html><head><meta charset="iso-8859-1"></head><body><p>Déjà vu à Noël</p></body></html>'

    assert extract(markup.encode("latin-1"), "old.html").text == "Déjà vu à Noël"


def test_html_with_only_scripts_has_no_text() -> None:
    assert reason_of(b"<html><body><script>x()</script></body></html>", "app.html") == "HTML has no text"


# --- Markdown and plain text --------------------------------------------------------------------------


def test_markdown_is_kept_as_written() -> None:
    source = "# Title\n\nSome *emphasis* and a [link](https://example.org).\n\n```\ncode\n```\n"

    assert extract(source.encode(), "README.md") == ExtractedText(source, "markdown")


def test_utf8_text_with_accents() -> None:
    source = "Ünïcödé façade: naïve café, Grüße, 東京, emoji 🎉\n"

    assert extract(source.encode(), "notes.txt") == ExtractedText(source, "text")


@pytest.mark.parametrize(
    ("source", "encoding"),
    [
        pytest.param("Café crème brûlée, naïve façade. Ça coûte très cher à Noël.\n", "latin-1", id="latin-1"),
        pytest.param("Größe: 12 Grad\n", "latin-1", id="short-latin-1"),
        pytest.param("He said “hello” — it’s €5.\n", "cp1252", id="windows-1252"),
        pytest.param(
            "Привет, мир! Это простой текст на русском языке, чтобы проверить кодировку.\n",
            "cp1251",
            id="windows-1251",
        ),
    ],
)
def test_legacy_charsets_are_decoded(source: str, encoding: str) -> None:
    assert extract(source.encode(encoding), "old.txt").text == source


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(codecs.BOM_UTF8 + "Ärger mit BOM\n".encode(), id="utf-8-bom"),
        pytest.param("Ärger mit BOM\n".encode("utf-16"), id="utf-16-native-bom"),
        pytest.param(codecs.BOM_UTF16_LE + "Ärger mit BOM\n".encode("utf-16-le"), id="utf-16-le"),
        pytest.param(codecs.BOM_UTF16_BE + "Ärger mit BOM\n".encode("utf-16-be"), id="utf-16-be"),
        pytest.param("Ärger mit BOM\n".encode("utf-32"), id="utf-32"),
    ],
)
def test_byte_order_marks_select_the_encoding_and_are_dropped(data: bytes) -> None:
    assert extract(data, "bom.txt") == ExtractedText("Ärger mit BOM\n", "text")


def test_utf16_without_bom_is_binary() -> None:
    assert reason_of("plain words".encode("utf-16-le"), "words.txt") == "binary file (not text)"


def test_license_file_without_extension_is_text() -> None:
    result = extract(APACHE_LICENSE.read_bytes(), "LICENSE")

    assert result.format == "text"
    assert "Apache License" in result.text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in result.text


def test_line_endings_are_normalised() -> None:
    result = extract(b"one\r\ntwo\rthree\nfour\r\n", "Makefile")

    assert result.text == "one\ntwo\nthree\nfour\n"


# --- Rejections ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"", "empty file", id="empty"),
        pytest.param(b"  \n\t\r\n  ", "empty file", id="whitespace"),
        pytest.param(" \n \n".encode("utf-16"), "empty file", id="utf-16-whitespace"),
        pytest.param(random.Random(42).randbytes(8192), "binary file (not text)", id="random-bytes"),
        pytest.param(
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(40),
            "unsupported binary format (PNG image)",
            id="png",
        ),
        pytest.param(b"\x7fELF\x02\x01\x01\x00" + bytes(56), "unsupported binary format (ELF executable)", id="elf"),
        pytest.param(b"SQLite format 3\x00" + bytes(84), "unsupported binary format (SQLite database)", id="sqlite"),
        pytest.param(b"\x1f\x8b\x08\x00" + bytes(20), "unsupported binary format (gzip archive)", id="gzip"),
        pytest.param(b"text then a NUL \x00 byte", "binary file (not text)", id="nul-byte"),
    ],
)
def test_files_without_indexable_text_are_rejected_with_a_reason(data: bytes, reason: str) -> None:
    assert reason_of(data, "file.txt") == reason
    assert reason_of(data, "no-extension") == reason


def test_binary_content_is_rejected_whatever_the_extension() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(40)

    assert reason_of(png, "diagram.md") == "unsupported binary format (PNG image)"
    assert reason_of(png, "page.html") == "unsupported binary format (PNG image)"


# --- read_and_extract ---------------------------------------------------------------------------------


def test_read_and_extract_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_bytes(b"# Notes\r\n\r\nHello.\r\n")

    assert read_and_extract(path, "notes.md") == ExtractedText("# Notes\n\nHello.\n", "markdown")


def test_a_file_of_exactly_the_limit_is_read_and_one_byte_more_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"x" * 1000)

    assert read_regular_file(path, 1000) == b"x" * 1000
    with pytest.raises(ExtractionError) as caught:
        read_and_extract(path, "notes.txt", max_bytes=999)
    assert caught.value.reason == "larger than the 999-byte limit (1000 bytes)"


def test_a_file_larger_than_its_size_says_is_cut_at_the_limit_while_reading() -> None:
    # /proc files are regular files whose stat size is 0 however much they hold: what a file that grows
    # after its stat looks like, deterministically. Reading must stop at the limit, not at the end.
    status = Path("/proc/self/status")
    assert os.stat(status).st_size == 0 and len(status.read_bytes()) > 200

    with pytest.raises(ExtractionError) as caught:
        read_regular_file(status, 100)
    assert caught.value.reason == "larger than the 100-byte limit (it grew while being read)"
    assert len(read_regular_file(status, 1 << 20)) > 200


def test_the_bounded_reader_refuses_what_read_and_extract_refuses(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "link").symlink_to(tmp_path / "pipe")
    reasons = {}
    for name in ["pipe", "link", "gone"]:
        with pytest.raises(ExtractionError) as caught:
            read_regular_file(tmp_path / name, 100)
        reasons[name] = caught.value.reason

    assert reasons == {
        "pipe": "not a regular file",
        "link": "symbolic link (not followed)",
        "gone": "No such file or directory",
    }


def read_reason(path: Path) -> str:
    with pytest.raises(ExtractionError) as caught:
        read_and_extract(path, path.name)
    return caught.value.reason


def test_missing_file_is_an_extraction_error(tmp_path: Path) -> None:
    assert read_reason(tmp_path / "gone.txt") == "No such file or directory"


def test_directory_is_an_extraction_error(tmp_path: Path) -> None:
    assert read_reason(tmp_path) == "is a directory"


def test_symbolic_link_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "target.txt").write_text("secret")
    (tmp_path / "link.txt").symlink_to(tmp_path / "target.txt")

    assert read_reason(tmp_path / "link.txt") == "symbolic link (not followed)"


@pytest.mark.timeout(10)
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    assert read_reason(fifo) == "not a regular file"


def test_overlong_name_reports_the_os_error(tmp_path: Path) -> None:
    assert read_reason(tmp_path / ("x" * 300)) == "File name too long"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "private.txt"
    path.write_text("hidden")
    path.chmod(0)

    assert read_reason(path) == "permission denied"


WRITE_ONLY_SYSCTL = Path("/proc/sys/vm/drop_caches")


def _refuses_reading(path: Path) -> bool:
    try:
        path.open("rb").close()
    except PermissionError:
        return True
    except OSError:
        return False
    return False


@pytest.mark.skipif(not _refuses_reading(WRITE_ONLY_SYSCTL), reason="needs a write-only sysctl file")
def test_permission_error_is_mapped_even_for_root() -> None:
    # A write-only sysctl refuses reading even to root, so this runs where the chmod test cannot.
    assert read_reason(WRITE_ONLY_SYSCTL) == "permission denied"
