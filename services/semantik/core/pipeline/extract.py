"""Extract: the bytes of one file to plain text, choosing the format by extension and by content.

`extract` is pure; `read_and_extract` is the one function that touches the file system. Every failure,
whatever library raised it, becomes an ExtractionError whose short `reason` is recorded on the
document's row, so one bad file never stops an index run.
"""

from __future__ import annotations

import codecs
import errno
import io
import logging
import os
import re
import stat
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Final, Literal

import charset_normalizer
import docx
from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning, XMLParsedAsHTMLWarning
from bs4.element import NavigableString, PreformattedString
from docx.blkcntnr import BlockItemContainer
from docx.document import Document as DocxDocument
from docx.table import Table
from docx.text.paragraph import Paragraph
from pypdf import PdfReader

ExtractedFormat = Literal["text", "markdown", "html", "pdf", "docx"]

SUPPORTED_FORMATS: Final[Mapping[ExtractedFormat, str]] = MappingProxyType(
    {
        "text": "plain text of any extension or none, detected by content: UTF-8, UTF-16/32 with a BOM, "
        "or a legacy charset",
        "markdown": ".md, .markdown, .mdown, .mkd (kept as written)",
        "html": ".html, .htm, .xhtml, or content that starts like an HTML document",
        "pdf": ".pdf or content starting with %PDF- (the text layer only, no OCR)",
        "docx": ".docx or a ZIP holding word/document.xml (paragraphs and tables)",
    }
)

_MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown", ".mdown", ".mkd"})
_HTML_EXTENSIONS = frozenset({".html", ".htm", ".xhtml"})
_HTML_START = re.compile(
    rb"^(?:\s|<!--.*?-->|<\?xml[^>]*>)*(?:<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>])",
    re.IGNORECASE | re.DOTALL,
)
_HTML_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([\w.:-]+)", re.IGNORECASE)
_HTML_DROPPED = ("script", "style", "noscript", "template", "nav", "svg", "iframe", "object", "canvas")
_HTML_BLOCKS = (
    *("address", "article", "aside", "blockquote", "caption", "dd", "details", "div", "dl", "dt"),
    *("fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6"),
    *("header", "hr", "li", "main", "ol", "p", "pre", "section", "summary", "table", "title", "tr", "ul"),
)
_HTML_CELLS = ("td", "th")

_BOMS = (
    # UTF-32 first: its little-endian BOM begins with the UTF-16 one.
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_MAX_CHAOS = 0.2
# Signatures of common binary files, so the reason says what the file is rather than "binary".
_BINARY_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "PNG image"),
    (0, b"\xff\xd8\xff", "JPEG image"),
    (0, b"GIF87a", "GIF image"),
    (0, b"GIF89a", "GIF image"),
    (0, b"II*\x00", "TIFF image"),
    (0, b"MM\x00*", "TIFF image"),
    (0, b"RIFF", "RIFF media file"),
    (0, b"OggS", "Ogg media file"),
    (0, b"fLaC", "FLAC audio"),
    (4, b"ftyp", "MP4/QuickTime media file"),
    (0, b"\x7fELF", "ELF executable"),
    (0, b"\xcf\xfa\xed\xfe", "Mach-O executable"),
    (0, b"\xca\xfe\xba\xbe", "Mach-O or Java class file"),
    (0, b"\x00asm", "WebAssembly module"),
    (0, b"PK\x03\x04", "ZIP archive"),
    (0, b"PK\x05\x06", "ZIP archive"),
    (0, b"\x1f\x8b", "gzip archive"),
    (4, b"1AY&SY", "bzip2 archive"),  # after "BZh<level>", which plain text could start with
    (0, b"\xfd7zXZ\x00", "xz archive"),
    (0, b"(\xb5/\xfd", "zstd archive"),
    (0, b"7z\xbc\xaf'\x1c", "7-Zip archive"),
    (0, b"Rar!\x1a\x07", "RAR archive"),
    (0, b"SQLite format 3\x00", "SQLite database"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "legacy Office document (.doc/.xls/.ppt)"),
)
# Cap on a DOCX's uncompressed size: the scan bounds the compressed size only, and a deflate bomb
# of a few megabytes would otherwise expand to gigabytes in python-docx.
_MAX_DOCX_UNCOMPRESSED = 256 * 1024 * 1024
_MAX_REASON_DETAIL = 200
# The default of SEMANTIK_MAX_FILE_BYTES; callers pass the setting.
DEFAULT_MAX_FILE_BYTES = 10 * 1024 * 1024
_READ_CHUNK = 1024 * 1024

# pypdf warns through logging about every recoverable defect it meets; in a folder of real PDFs that
# is a flood of lines nobody acts on. Failures still surface as ExtractionError.
logging.getLogger("pypdf").setLevel(logging.ERROR)


class ExtractionError(Exception):
    """A file that yields no indexable text; `reason` is short and meant for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ExtractedText:
    text: str
    format: ExtractedFormat


def extract(data: bytes, filename: str) -> ExtractedText:
    """Plain text of a file's bytes; `filename` only lends its extension. Raises ExtractionError."""
    if not data.strip():
        raise ExtractionError("empty file")
    extension = PurePosixPath(filename).suffix.lower()
    if extension == ".pdf" or data.startswith(b"%PDF-"):
        return _finish(_pdf_text(data), "pdf")
    if extension == ".docx" or (data.startswith(b"PK\x03\x04") and _is_docx(data)):
        return _finish(_docx_text(data), "docx")
    kind = _binary_kind(data)
    if kind is not None:
        raise ExtractionError(f"unsupported binary format ({kind})")
    if extension in _MARKDOWN_EXTENSIONS:
        return _finish(_decode_text(data), "markdown")
    if extension in _HTML_EXTENSIONS or _HTML_START.match(data.removeprefix(codecs.BOM_UTF8)[:2048]):
        return _finish(_html_text(_decode_html(data)), "html")
    return _finish(_decode_text(data), "text")


def read_and_extract(path: Path, filename: str, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> ExtractedText:
    """Read a regular file of at most `max_bytes` and extract it; an unreadable file is an ExtractionError too."""
    return extract(read_regular_file(path, max_bytes), filename)


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes`, or an ExtractionError saying why not.

    The scan only yields regular files under the size limit, but the file may have been swapped or grown
    since: O_NONBLOCK keeps a FIFO from blocking the open, O_NOFOLLOW keeps a link from leading outside the
    folder, and reading stops one byte past the limit, so a file that grows while read costs no more.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise _read_error(exc) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ExtractionError("is a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file")
        if info.st_size > max_bytes:
            raise ExtractionError(f"larger than the {max_bytes}-byte limit ({info.st_size} bytes)")
        data = bytearray()
        while len(data) <= max_bytes and (chunk := os.read(fd, min(_READ_CHUNK, max_bytes + 1 - len(data)))):
            data += chunk
        if len(data) > max_bytes:
            raise ExtractionError(f"larger than the {max_bytes}-byte limit (it grew while being read)")
        return bytes(data)
    except OSError as exc:
        raise _read_error(exc) from None
    finally:
        os.close(fd)


def _read_error(exc: OSError) -> ExtractionError:
    if isinstance(exc, PermissionError):
        return ExtractionError("permission denied")
    if exc.errno == errno.ELOOP:
        return ExtractionError("symbolic link (not followed)")
    return ExtractionError(exc.strerror or str(exc))


def _finish(text: str, fmt: ExtractedFormat) -> ExtractedText:
    # NUL is dropped because PostgreSQL text columns reject it and some PDFs' text layers contain it.
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "").removeprefix("\ufeff")
    if not text.strip():
        raise ExtractionError("empty file" if fmt in ("text", "markdown") else f"{fmt.upper()} has no text")
    return ExtractedText(text, fmt)


def _describe(exc: BaseException) -> str:
    detail = str(exc).strip() or type(exc).__name__
    return detail if len(detail) <= _MAX_REASON_DETAIL else detail[: _MAX_REASON_DETAIL - 3] + "..."


def _binary_kind(data: bytes) -> str | None:
    for offset, signature, kind in _BINARY_SIGNATURES:
        if data.startswith(signature, offset):
            return kind
    return None


def _decode_text(data: bytes) -> str:
    """Decode bytes that are text; raise for binary content (NUL bytes, undecodable, high chaos)."""
    for bom, encoding in _BOMS:
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
    if best is None or best.chaos > _MAX_CHAOS:
        raise ExtractionError("binary file (not text)")
    # Short Western texts give the detector too little evidence and it then names an arbitrary code
    # page (cp1250, mac_roman, cp1006); Windows-1252, a superset of printable Latin-1, is the likeliest
    # legacy charset. When the detector does recognise a language, its charset is trusted.
    if best.language == "Unknown":
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            pass
    return str(best)


def _decode_html(data: bytes) -> str:
    declared = _HTML_CHARSET.search(data[:4096])
    if declared is None or b"\x00" in data or any(data.startswith(bom) for bom, _ in _BOMS):
        return _decode_text(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        encoding = codecs.lookup(declared.group(1).decode("ascii", "replace")).name
    except LookupError:
        return _decode_text(data)
    # As browsers do (WHATWG Encoding): Latin-1 and ASCII labels mean Windows-1252, and a UTF-16/32
    # label in a meta tag cannot be true of bytes that were readable enough to find it.
    if encoding.startswith(("utf-16", "utf-32")):
        return _decode_text(data)
    if encoding in ("iso8859-1", "ascii"):
        encoding = "cp1252"
    return data.decode(encoding, errors="replace")


def _html_text(markup: str) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
            warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
            soup = BeautifulSoup(markup, "lxml")
        for tag in soup.find_all(_HTML_DROPPED):
            tag.decompose()
        # Comments, doctypes and processing instructions are markup, not text.
        for node in soup.find_all(string=lambda s: isinstance(s, PreformattedString)):
            node.extract()
        # Source line breaks inside a paragraph are layout, not structure: collapse them, except in <pre>.
        for node in soup.find_all(string=True):
            if node.find_parent("pre") is None:
                node.replace_with(NavigableString(re.sub(r"\s+", " ", str(node))))
        for tag in soup.find_all("br"):
            tag.replace_with(NavigableString("\n"))
        for tag in soup.find_all(_HTML_CELLS):
            if tag.find_previous_sibling(_HTML_CELLS) is not None:
                tag.insert_before(NavigableString(" | "))
        for tag in soup.find_all(_HTML_BLOCKS):
            tag.insert_before(NavigableString("\n\n"))
            tag.insert_after(NavigableString("\n\n"))
        text = soup.get_text()
    except Exception as exc:  # lxml and bs4 raise many kinds on hostile markup; any of them fails the file
        raise ExtractionError(f"corrupt HTML: {_describe(exc)}") from None
    lines = (re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _pdf_text(data: bytes) -> str:
    try:
        reader = PdfReader(io.BytesIO(data))
    except Exception as exc:  # pypdf raises far more than PyPdfError on damaged files
        raise ExtractionError(f"corrupt PDF: {_describe(exc)}") from None
    try:
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except Exception as exc:
                raise ExtractionError(f"encrypted PDF: cannot decrypt ({_describe(exc)})") from None
            if not opened:
                raise ExtractionError("encrypted PDF: needs a password")
        pages = list(reader.pages)
    except ExtractionError:
        raise
    except Exception as exc:
        raise ExtractionError(f"corrupt PDF: {_describe(exc)}") from None
    # A damaged page costs that page, not the document.
    texts: list[str] = []
    failure: Exception | None = None
    for page in pages:
        try:
            texts.append((page.extract_text() or "").strip())
        except Exception as exc:
            failure = failure or exc
    text = "\n\n".join(t for t in texts if t)
    if text:
        return text
    if failure is not None:
        raise ExtractionError(f"corrupt PDF: {_describe(failure)}")
    raise ExtractionError("PDF has no extractable text (scanned pages need OCR)")


def _is_docx(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, ValueError, OSError):
        return False


def _docx_text(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
        if expanded > _MAX_DOCX_UNCOMPRESSED:
            raise ExtractionError(f"DOCX too large once uncompressed ({expanded} bytes)")
        document = docx.Document(io.BytesIO(data))
        blocks = _docx_blocks(document)
    except ExtractionError:
        raise
    except Exception as exc:  # python-docx surfaces zipfile, lxml, KeyError and its own errors alike
        raise ExtractionError(f"corrupt DOCX: {_describe(exc)}") from None
    return "\n\n".join(block for block in blocks if block.strip())


def _docx_blocks(container: DocxDocument | BlockItemContainer) -> list[str]:
    """Paragraphs and table rows (cells joined by " | ") in document order, nested tables included."""
    blocks: list[str] = []
    for block in container.iter_inner_content():
        if isinstance(block, Paragraph):
            blocks.append(block.text)
        elif isinstance(block, Table):
            for row in block.rows:
                cells: list[str] = []
                previous = None
                for cell in row.cells:
                    # python-docx repeats the same cell object once per grid column a merged cell spans.
                    if cell is not previous:
                        cells.append("\n".join(b for b in _docx_blocks(cell) if b.strip()).strip())
                    previous = cell
                blocks.append(" | ".join(cells))
    return blocks
