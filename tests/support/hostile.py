"""A hostile-file corpus, generated: regex bait, decompression bombs, deep markup, special files and links,
beside good files whose content a search must still find.

Each file comes with what may become of it: "indexed" or a failure reason, as a pattern. Bait that the
linear scans now read in a moment may be indexed; a sandbox limit is the fallback, never a hang.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.corpus import KEYS_MD, ONCALL_HTML, VACATION_TXT

TIMEOUT_SECONDS = 5
MAX_FILE_BYTES = 5 * 1024 * 1024
# What any hostile file may come to when a limit, not the parser, stops it.
LIMITED = rf"timed out after {TIMEOUT_SECONDS} s|used more than \d+ s of CPU|exceeded the .* memory limit"

GOOD_FILES = {"keys.md": KEYS_MD, "oncall.html": ONCALL_HTML, "vacation.txt": VACATION_TXT}
"""Good files and their content; each must stay searchable."""


@dataclass
class HostileCorpus:
    root: Path
    outside: Path
    expected: dict[str, re.Pattern[str]] = field(default_factory=dict)
    """Relative path -> what its outcome ("indexed" or the failure reason) must match."""

    def expect(self, relpath: str, pattern: str) -> None:
        self.expected[relpath] = re.compile(rf"^(?:{pattern})$")


def _zeros_deflated(total: int) -> bytes:
    """`total` zero bytes, deflated in pieces so neither side holds them in memory."""
    compressor = zlib.compressobj(9)
    piece = bytes(1024 * 1024)
    out = [compressor.compress(piece) for _ in range(total // len(piece))]
    return b"".join([*out, compressor.flush()])


def pdf_with_stream(deflated: bytes) -> bytes:
    """A one-page PDF whose content stream is `deflated` (FlateDecode), written by hand so its size is exact."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(deflated) + deflated + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    body = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(body))
        body += b"%d 0 obj\n" % number + obj + b"\nendobj\n"
    xref = len(body)
    body += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    body += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    body += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(body)


def write_pdf_bomb(path: Path, expanded: int) -> None:
    """A one-page PDF whose content stream inflates to `expanded` bytes."""
    path.write_bytes(pdf_with_stream(_zeros_deflated(expanded)))


def write_docx_bomb(path: Path, expanded: int, *, lie: bool) -> None:
    """A DOCX whose word/document.xml inflates to `expanded` bytes; with `lie` its headers claim 1 KiB."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            member.write(b'<?xml version="1.0"?><w:document><w:body><w:p><w:r><w:t>')
            piece = b" " * (1024 * 1024)
            for _ in range(expanded // len(piece)):
                member.write(piece)
    if lie:
        data = bytearray(path.read_bytes())
        # Zip64 keeps the true size in an extra field; the lie goes into both copies of it.
        true_size = (expanded // (1024 * 1024)) * 1024 * 1024 + 57
        needle = true_size.to_bytes(8, "little")
        start = data.find(needle)
        while start != -1:
            data[start : start + 8] = (1024).to_bytes(8, "little")
            start = data.find(needle, start + 8)
        path.write_bytes(bytes(data))


def build_hostile_corpus(base: Path) -> HostileCorpus:
    root = base / "hostile"
    outside = base / "outside"
    root.mkdir(parents=True)
    outside.mkdir()
    corpus = HostileCorpus(root, outside)
    for name, content in GOOD_FILES.items():
        (root / name).write_text(content)
        corpus.expect(name, "indexed")

    # Regex bait, one per pattern that backtracked: comment runs before an HTML sniff, a heading line
    # of spaces, one 4 MB word, and <meta fragments without an end.
    (root / "comments.txt").write_bytes(b"<!---->" * 60 + b"<!--")
    corpus.expect("comments.txt", f"indexed|{LIMITED}")
    (root / "heading.md").write_bytes(b"#" + b" " * 30_000 + b"x\n")
    corpus.expect("heading.md", f"indexed|{LIMITED}")
    (root / "one-word.txt").write_bytes(b"a" * (4 * 1024 * 1024))
    # The embedder service caps a text's length (SEMANTIK_EMBEDDER_MAX_TEXT_CHARS); a file whose chunks
    # pass it fails alone, not with the good files of its batch.
    corpus.expect("one-word.txt", rf"indexed|the embedder refused its text \(.*\)|{LIMITED}")
    (root / "meta.html").write_bytes(b"<html><head>" + b"<meta " * 50_000 + b"charset</head><body>meta</body></html>")
    corpus.expect("meta.html", f"indexed|HTML has no text|{LIMITED}")

    write_docx_bomb(root / "bomb.docx", 300 * 1024 * 1024, lie=False)
    corpus.expect("bomb.docx", f"(?:corrupt )?DOCX.*|{LIMITED}")
    write_docx_bomb(root / "liar.docx", 300 * 1024 * 1024, lie=True)
    corpus.expect("liar.docx", f"(?:corrupt )?DOCX.*|{LIMITED}")
    write_pdf_bomb(root / "bomb.pdf", 1024 * 1024 * 1024)
    corpus.expect("bomb.pdf", f"(?:corrupt )?PDF.*|{LIMITED}")
    (root / "nested.html").write_text("<html><body>" + "<div>" * 200_000 + "deep" + "</div>" * 200_000)
    corpus.expect("nested.html", f"indexed|corrupt HTML.*|HTML nested deeper .*|HTML has no text|{LIMITED}")

    (root / "random.txt").write_bytes(random.Random(12).randbytes(64 * 1024))
    corpus.expect("random.txt", r"binary file \(not text\)")
    os.mkfifo(root / "pipe.txt")
    corpus.expect("pipe.txt", r"not a regular file \(a FIFO\)")
    (outside / "secret.txt").write_text("The launch codes are kept in the vault under the stairs.\n")
    (root / "escape.txt").symlink_to(outside / "secret.txt")
    corpus.expect("escape.txt", "symlink points outside the root")
    (root / "loop.txt").symlink_to(root / "loop.txt")
    corpus.expect("loop.txt", "symlink loop")
    (root / "grows.txt").write_text(Grower.START)
    corpus.expect("grows.txt", rf"indexed|larger than the {MAX_FILE_BYTES}-byte limit.*")
    return corpus


class Grower:
    """Appends to a file in the background (while an index runs) until it is past `limit` bytes;
    the file starts small again on each use."""

    START = "a line that keeps growing\n" * 40

    def __init__(self, path: Path, limit: int = 2 * MAX_FILE_BYTES) -> None:
        self._path = path
        self._limit = limit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._grow, daemon=True)

    def __enter__(self) -> Grower:
        self._path.write_text(self.START)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _grow(self) -> None:
        piece = b"more words appended while the index reads the file\n" * 2000
        with self._path.open("ab") as file:
            while not self._stop.is_set() and file.tell() < self._limit:
                file.write(piece)
                file.flush()
                time.sleep(0.05)
