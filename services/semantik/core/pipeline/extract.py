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
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Final, Literal

import charset_normalizer
import docx
from docx.blkcntnr import BlockItemContainer
from docx.document import Document as DocxDocument
from docx.table import Table
from docx.text.paragraph import Paragraph
from lxml import etree
from pypdf import Configuration, PdfReader, apply_configuration
from pypdf.errors import LimitReachedError

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
# Sniffing reads only the head of a file; both scans are hand-written and linear (a regex with nested
# quantifiers backtracked exponentially on repeated "<!---->").
_HTML_SNIFF_BYTES = 2048
_HTML_CHARSET_BYTES = 4096
_ASCII_SPACE = b" \t\n\r\f\v"
_HTML_OPENING_TAGS = (b"<html", b"<head", b"<body")
_TAG_ENDS = frozenset({b" ", b"\t", b"\n", b"\r", b"\f", b"\v", b">"})
_CHARSET_NAME = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-")
_HTML_DROPPED = frozenset({"script", "style", "noscript", "template", "nav", "svg", "iframe", "object", "canvas"})
_HTML_BLOCKS = frozenset(
    {
        *("address", "article", "aside", "blockquote", "caption", "dd", "details", "div", "dl", "dt"),
        *("fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6"),
        *("header", "hr", "li", "main", "ol", "p", "pre", "section", "summary", "table", "title", "tr", "ul"),
    }
)
_HTML_CELLS = frozenset({"td", "th"})
# libxml2's limit without XML_PARSE_HUGE, which stays off: deeper markup is refused, not parsed.
_HTML_MAX_DEPTH = 256

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
# Caps on a DOCX's uncompressed size, all parts and each one, counted while decompressing: the scan bounds
# the compressed size only, and a deflate bomb of a few megabytes would otherwise expand to gigabytes in
# python-docx. Real documents have tens to hundreds of parts.
_MAX_DOCX_UNCOMPRESSED = 256 * 1024 * 1024
_MAX_DOCX_PART_UNCOMPRESSED = 64 * 1024 * 1024
_MAX_DOCX_PARTS = 10_000
_MAX_REASON_DETAIL = 200
# The default of SEMANTIK_MAX_FILE_BYTES; callers pass the setting.
DEFAULT_MAX_FILE_BYTES = 10 * 1024 * 1024
_READ_CHUNK = 1024 * 1024

# pypdf's own bounds on what one PDF may make it decompress or allocate, tighter than its defaults (75 MB
# a stream): a file is at most max_file_bytes, and text worth indexing never needs a bigger stream. A PDF
# that reaches one fails whole, since it is built to exhaust the reader, not damaged.
_PDF_MAX_STREAM_BYTES = 32 * 1024 * 1024
_PDF_LIMITS = Configuration().with_overwrites(
    maximum_declared_stream_length=_PDF_MAX_STREAM_BYTES,
    array_based_stream_maximum_output_length=_PDF_MAX_STREAM_BYTES,
    jbig2_maximum_output_length=_PDF_MAX_STREAM_BYTES,
    lzw_maximum_output_length=_PDF_MAX_STREAM_BYTES,
    run_length_maximum_output_length=_PDF_MAX_STREAM_BYTES,
    zlib_maximum_output_length=_PDF_MAX_STREAM_BYTES,
    brotli_maximum_output_length=_PDF_MAX_STREAM_BYTES,
    image_maximum_buffer_size=_PDF_MAX_STREAM_BYTES,
    stream_decoding_work_maximum_length=4 * _PDF_MAX_STREAM_BYTES,
    # No external decoder is ever run on a document.
    jbig2dec_binary=None,
)

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
    if extension in _HTML_EXTENSIONS or _looks_like_html(data.removeprefix(codecs.BOM_UTF8)[:_HTML_SNIFF_BYTES]):
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
    declared = _declared_charset(data[:_HTML_CHARSET_BYTES])
    if declared is None or b"\x00" in data or any(data.startswith(bom) for bom, _ in _BOMS):
        return _decode_text(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        encoding = codecs.lookup(declared.decode("ascii", "replace")).name
    except LookupError:
        return _decode_text(data)
    # As browsers do (WHATWG Encoding): Latin-1 and ASCII labels mean Windows-1252, and a UTF-16/32
    # label in a meta tag cannot be true of bytes that were readable enough to find it.
    if encoding.startswith(("utf-16", "utf-32")):
        return _decode_text(data)
    if encoding in ("iso8859-1", "ascii"):
        encoding = "cp1252"
    return data.decode(encoding, errors="replace")


def _looks_like_html(head: bytes) -> bool:
    """Whether the bytes open like an HTML document: whitespace, comments and an XML declaration, then a
    doctype or an html, head or body tag (ASCII case-insensitive). One pass, each byte looked at once."""
    lowered = head.lower()
    position = 0
    while position < len(lowered):
        if lowered[position] in _ASCII_SPACE:
            position += 1
        elif lowered.startswith(b"<!--", position):
            close = lowered.find(b"-->", position + 4)
            if close < 0:
                return False
            position = close + 3
        elif lowered.startswith(b"<?xml", position):
            close = lowered.find(b">", position + 5)
            if close < 0:
                return False
            position = close + 1
        elif lowered.startswith(b"<!doctype", position):
            after = position + len(b"<!doctype")
            name = _skip_ascii_space(lowered, after)
            return name > after and lowered.startswith(b"html", name)
        else:
            return any(
                lowered.startswith(tag, position)
                and lowered[position + len(tag) : position + len(tag) + 1] in _TAG_ENDS
                for tag in _HTML_OPENING_TAGS
            )
    return False


def _declared_charset(head: bytes) -> bytes | None:
    """The charset a <meta> tag declares (`<meta ... charset = "name"`), the last one in the first tag that
    has one, in linear time. Every <meta> up to a tag's closing ">" shares that tag's candidates, so
    a tag is scanned once and the next search starts past it."""
    lowered = head.lower()
    position = lowered.find(b"<meta")
    while position >= 0:
        tag_end = lowered.find(b">", position)
        tag_end = len(lowered) if tag_end < 0 else tag_end
        # At least one byte between "<meta" and "charset", as in <meta charset=...>.
        found = lowered.rfind(b"charset", position + 6, tag_end)
        while found >= 0:
            value = _charset_value(head, found + len(b"charset"))
            if value is not None:
                return value
            found = lowered.rfind(b"charset", position + 6, found)
        position = lowered.find(b"<meta", tag_end)
    return None


def _charset_value(head: bytes, position: int) -> bytes | None:
    """The name in `\\s*=\\s*["']?\\s*name` at `position`, or None."""
    position = _skip_ascii_space(head, position)
    if head[position : position + 1] != b"=":
        return None
    position = _skip_ascii_space(head, position + 1)
    if head[position : position + 1] in (b'"', b"'"):
        position += 1
    position = _skip_ascii_space(head, position)
    end = position
    while end < len(head) and head[end] in _CHARSET_NAME:
        end += 1
    return head[position:end] if end > position else None


def _skip_ascii_space(data: bytes, position: int) -> int:
    while position < len(data) and data[position] in _ASCII_SPACE:
        position += 1
    return position


def _html_text(markup: str) -> str:
    """The text of an HTML document: one walk over lxml's tree, so time grows with the number of nodes
    (BeautifulSoup's find_parent and insert_after cost the depth at every node, quadratic on deep markup).
    """
    parser = etree.HTMLParser(encoding="utf-8", recover=True, no_network=True)
    try:
        root = etree.fromstring(markup.encode("utf-8", "replace"), parser)
    except Exception as exc:  # lxml raises many kinds on hostile markup; any of them fails the file
        raise ExtractionError(f"corrupt HTML: {_describe(exc)}") from None
    # libxml2 stops at 256 levels of nesting and keeps what it read so far; a file cut short silently would
    # be indexed as if whole, so it fails instead.
    for error in parser.error_log:
        if error.type_name == "ERR_RESOURCE_LIMIT":
            if "depth" in error.message:
                raise ExtractionError(f"HTML nested deeper than {_HTML_MAX_DEPTH} elements")
            raise ExtractionError(f"HTML beyond the parser's limits: {_describe(Exception(error.message))}")
    parts: list[str] = []
    if root is not None:
        _html_parts(root, parts)
    lines = (re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in "".join(parts).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _html_parts(root: etree._Element, parts: list[str]) -> None:
    """Append the text of `root` to `parts`: blocks set apart by blank lines, <br> as a line break, table
    cells after the first in a row preceded by " | ", source line breaks collapsed except in <pre>.
    Dropped elements, comments and processing instructions give nothing but their tail. Iterative, so
    depth costs no recursion."""

    def text(value: str | None, in_pre: bool) -> None:
        if value:
            parts.append(value if in_pre else re.sub(r"\s+", " ", value))

    # Per open element: its children still to visit, whether it is a block, whether it is in a <pre>,
    # whether a td/th was among its children so far, and its tail with the <pre> state the tail is in.
    stack: list[tuple[Iterator[etree._Element], bool, bool, list[bool], str | None, bool]] = []

    def visit(element: etree._Element, in_pre: bool, cells_before: list[bool]) -> None:
        tag = element.tag
        if not isinstance(tag, str) or tag in _HTML_DROPPED or tag == "br":
            if tag == "br":
                parts.append("\n")
            text(element.tail, in_pre)
            return
        if tag in _HTML_CELLS:
            if cells_before[0]:
                parts.append(" | ")
            cells_before[0] = True
        block = tag in _HTML_BLOCKS
        if block:
            parts.append("\n\n")
        inner_pre = in_pre or tag == "pre"
        text(element.text, inner_pre)
        stack.append((iter(element), block, inner_pre, [False], element.tail, in_pre))

    visit(root, False, [False])
    while stack:
        children, block, in_pre, cells_before, tail, outer_pre = stack[-1]
        child = next(children, None)
        if child is not None:
            visit(child, in_pre, cells_before)
            continue
        stack.pop()
        if block:
            parts.append("\n\n")
        text(tail, outer_pre)


def _pdf_text(data: bytes) -> str:
    try:
        with apply_configuration(_PDF_LIMITS):
            return _pdf_pages_text(data)
    except LimitReachedError as exc:
        raise ExtractionError(f"PDF beyond the reader's limits: {_describe(exc)}") from None


def _pdf_pages_text(data: bytes) -> str:
    try:
        reader = PdfReader(io.BytesIO(data))
    except LimitReachedError:
        raise
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
    except (ExtractionError, LimitReachedError):
        raise
    except Exception as exc:
        raise ExtractionError(f"corrupt PDF: {_describe(exc)}") from None
    # A damaged page costs that page, not the document.
    texts: list[str] = []
    failure: Exception | None = None
    for page in pages:
        try:
            texts.append((page.extract_text() or "").strip())
        except LimitReachedError:
            raise
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
        document = docx.Document(io.BytesIO(_verified_docx(data)))
        blocks = _docx_blocks(document)
    except ExtractionError:
        raise
    except Exception as exc:  # python-docx surfaces zipfile, lxml, KeyError and its own errors alike
        raise ExtractionError(f"corrupt DOCX: {_describe(exc)}") from None
    return "\n\n".join(block for block in blocks if block.strip())


def _verified_docx(data: bytes) -> bytes:
    """The DOCX rebuilt as an uncompressed ZIP of what its members really decompress to, within the caps.

    A ZIP's declared sizes are the archive's own word; every member is read as a stream and its bytes
    counted as they come, so a deflate bomb stops at the cap instead of in python-docx. Only XML parts
    keep their content: the text lives there, and media (kept as empty parts, so relationships resolve)
    would only cost memory.
    """
    parts: dict[str, bytes] = {}
    expanded = 0
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = archive.infolist()
        if len(members) > _MAX_DOCX_PARTS:
            raise ExtractionError(f"DOCX has too many parts ({len(members)}, the limit is {_MAX_DOCX_PARTS})")
        for info in members:
            if info.is_dir():
                continue
            keep = info.filename.lower().endswith((".xml", ".rels"))
            chunks: list[bytes] = []
            size = 0
            with archive.open(info) as member:
                while chunk := member.read(_READ_CHUNK):
                    size += len(chunk)
                    expanded += len(chunk)
                    if size > _MAX_DOCX_PART_UNCOMPRESSED:
                        raise ExtractionError(
                            f"DOCX too large once uncompressed ({info.filename} is over the "
                            f"{_MAX_DOCX_PART_UNCOMPRESSED}-byte limit for one part)"
                        )
                    if expanded > _MAX_DOCX_UNCOMPRESSED:
                        raise ExtractionError(
                            f"DOCX too large once uncompressed (over the {_MAX_DOCX_UNCOMPRESSED}-byte limit)"
                        )
                    if keep:
                        chunks.append(chunk)
            parts[info.filename] = b"".join(chunks)
    rebuilt = io.BytesIO()
    with zipfile.ZipFile(rebuilt, "w", zipfile.ZIP_STORED) as archive:
        for name, content in parts.items():
            archive.writestr(name, content)
    return rebuilt.getvalue()


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
