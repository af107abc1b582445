"""Extractors: bytes of one file to plain text, choosing the format by extension and by content.

Pure except `read_and_extract`. Every parser failure becomes an ExtractionError with a short reason
that is recorded on the document's row.
"""

from __future__ import annotations

import codecs
import io
import logging
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import charset_normalizer

SUPPORTED_FORMATS = {
    "text": "plain text of any extension (or none), detected by content: UTF-8, UTF-16 with BOM, legacy charsets",
    "markdown": ".md, .markdown",
    "html": ".html, .htm, .xhtml, or content that starts like an HTML document",
    "pdf": ".pdf or content starting with %PDF- (text layer only, no OCR)",
    "docx": ".docx or a zip holding word/document.xml",
}

_MARKDOWN_EXTENSIONS = {".md", ".markdown", ".mdown", ".mkd"}
_HTML_EXTENSIONS = {".html", ".htm", ".xhtml"}
_HTML_SNIFF = re.compile(rb"^\s*(<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>])", re.IGNORECASE)
_BLOCK_TAGS = (
    "address article aside blockquote dd div dl dt fieldset figcaption figure footer form h1 h2 h3 h4 h5 h6 "
    "header hr li main nav ol p pre section table tr td th ul title br"
).split()
_DROPPED_TAGS = ["script", "style", "noscript", "template", "svg", "iframe", "object", "canvas", "nav"]
_MAX_CHAOS = 0.2
_MULTIBYTE_ENCODINGS = frozenset(
    "big5 big5hkscs cp932 cp949 cp950 euc_jis_2004 euc_jisx0213 euc_jp euc_kr gb2312 gb18030 gbk hz "
    "iso2022_jp iso2022_kr johab shift_jis shift_jis_2004 shift_jisx0213 utf_16 utf_32".split()
)
_CONTROL_BYTES = re.compile(rb"[\x01-\x08\x0e-\x1a\x1c-\x1f\x7f]")

logging.getLogger("pypdf").setLevel(logging.ERROR)


class ExtractionError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ExtractedText:
    text: str
    format: str


def extract(data: bytes, filename: str) -> ExtractedText:
    if not data.strip():
        raise ExtractionError("empty file")
    extension = PurePosixPath(filename).suffix.lower()
    if extension == ".pdf" or data.startswith(b"%PDF-"):
        return _finish(_pdf(data), "pdf")
    if extension == ".docx" or (data.startswith(b"PK\x03\x04") and _is_docx(data)):
        return _finish(_docx(data), "docx")
    if extension in _HTML_EXTENSIONS or _HTML_SNIFF.match(data[:1024]):
        return _finish(_html(decode_text(data)), "html")
    text = decode_text(data)
    return _finish(text, "markdown" if extension in _MARKDOWN_EXTENSIONS else "text")


def read_and_extract(path: Path, filename: str) -> ExtractedText:
    try:
        data = path.read_bytes()
    except PermissionError:
        raise ExtractionError("permission denied") from None
    except IsADirectoryError:
        raise ExtractionError("is a directory") from None
    except OSError as exc:
        raise ExtractionError(f"cannot read the file: {exc.strerror or exc}") from None
    return extract(data, filename)


def decode_text(data: bytes) -> str:
    """Decode bytes that are text; raise for binary content (NULs, undecodable, high chaos)."""
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise ExtractionError(f"binary file (not text): invalid {encoding}: {exc.reason}") from None
    if b"\x00" in data:
        raise ExtractionError("binary file (not text)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(data).best()
    if best is not None and best.chaos <= _MAX_CHAOS and best.encoding in _MULTIBYTE_ENCODINGS:
        return str(best)
    # A single-byte legacy charset: detection has little evidence in short Western texts and often picks
    # an exotic code page, so prefer Windows-1252 (a superset of printable Latin-1) when it fits.
    if not _CONTROL_BYTES.search(data):
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            return data.decode("latin-1")
    if best is None or best.chaos > _MAX_CHAOS:
        raise ExtractionError("binary file (not text)")
    return str(best)


def _finish(text: str, fmt: str) -> ExtractedText:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise ExtractionError("empty file" if fmt in ("text", "markdown") else f"{fmt.upper()} has no text")
    return ExtractedText(text, fmt)


def _pdf(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractionError("encrypted PDF: needs a password")
        pages = [page.extract_text() or "" for page in reader.pages]
    except ExtractionError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        raise ExtractionError(f"corrupt PDF: {exc or type(exc).__name__}") from None
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        raise ExtractionError("PDF has no extractable text (scanned images need OCR)")
    return text


def _is_docx(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except zipfile.BadZipFile:
        return False


def _docx(data: bytes) -> str:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
        blocks: list[str] = []
        for block in document.iter_inner_content():
            if isinstance(block, Paragraph):
                blocks.append(block.text)
            elif isinstance(block, Table):
                for row in block.rows:
                    blocks.append(" | ".join(cell.text.strip() for cell in row.cells))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ExtractionError(f"corrupt DOCX: {exc or type(exc).__name__}") from None
    except Exception as exc:  # python-docx raises lxml and package errors of many kinds
        raise ExtractionError(f"corrupt DOCX: {type(exc).__name__}: {exc}") from None
    return "\n\n".join(block for block in blocks if block.strip())


def _html(markup: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(markup, "lxml")
    for tag in soup(_DROPPED_TAGS):
        tag.decompose()
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before("\n\n")
        tag.insert_after("\n\n")
    text = soup.get_text()
    lines = (re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
