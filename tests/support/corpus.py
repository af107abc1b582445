"""Test corpora: Debian's common-licenses (real text nobody here wrote) plus files of every format."""

from __future__ import annotations

import shutil
from pathlib import Path

COMMON_LICENSES = Path("/usr/share/common-licenses")

KEYS_MD = """# Operations handbook

## Rotating API keys

Create a new key with the key tool, deploy it to every client, then revoke the old key.
Keys older than ninety days are rotated by the security team every quarter.

## Backups

Nightly backups of the Postgres database are kept for thirty days in the object store.
Restores are rehearsed once a month on the staging cluster.
"""

ONCALL_HTML = """<!doctype html><html><head><title>On-call guide</title>
<style>body { color: red }</style><script>var tracking = "do not index this";</script></head>
<body><nav>Home | About</nav>
<h1>On-call guide</h1>
<p>When the pager fires at night, acknowledge the alert within five minutes.</p>
<p>Escalate to the incident commander if customers are affected.</p>
</body></html>
"""

VACATION_TXT = "Vacation policy: employees get twenty-five days of paid leave per year.\n"


def write_pdf(path: Path, paragraphs: list[str]) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4)
    for paragraph in paragraphs:
        text = pdf.beginText(72, 760)
        for line in paragraph.split("\n"):
            text.textLine(line)
        pdf.drawText(text)
        pdf.showPage()
    pdf.save()


def write_docx(path: Path, paragraphs: list[str]) -> None:
    import docx

    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    document.save(str(path))


def copy_licenses(target: Path) -> list[str]:
    """Copies the regular files (not the GPL -> GPL-3 style links) and returns their names."""
    target.mkdir(parents=True, exist_ok=True)
    names = []
    for source in sorted(COMMON_LICENSES.iterdir()):
        if source.is_file() and not source.is_symlink():
            shutil.copyfile(source, target / source.name)
            names.append(source.name)
    return names


def build_corpus(root: Path) -> Path:
    """A folder with every supported format, in sub-folders, plus the licenses."""
    copy_licenses(root / "licenses")
    handbook = root / "handbook"
    handbook.mkdir(parents=True)
    (handbook / "keys.md").write_text(KEYS_MD)
    (handbook / "oncall.html").write_text(ONCALL_HTML)
    (handbook / "vacation.txt").write_text(VACATION_TXT)
    write_pdf(
        handbook / "expenses.pdf",
        ["Expense reports are due on the fifth working day of each month.\nReceipts must be attached."],
    )
    write_docx(
        handbook / "laptops.docx",
        ["Laptop refresh: engineers receive a new laptop every three years.", "Return the old one to IT."],
    )
    return root


def build_many_files(root: Path, count: int = 320) -> Path:
    """`count` text files of real prose (paragraphs of Debian's licenses) in nested folders, plus two
    that must fail (a binary file, an empty file): the corpus of the service-mode fault tests."""
    paragraphs = [
        " ".join(paragraph.split())
        for license_file in sorted(COMMON_LICENSES.iterdir())
        if license_file.is_file()
        for paragraph in license_file.read_text(errors="replace").split("\n\n")
        if len(paragraph.split()) >= 12
    ]
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        folder = root / f"part-{i % 8}" / f"section-{i % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        start = (i * 7) % len(paragraphs)
        text = "\n\n".join(paragraphs[(start + k) % len(paragraphs)] for k in range(1 + i % 4))
        (folder / f"note-{i:04d}.md").write_text(f"# Note {i}\n\n{text}\n")
    (root / "broken.bin").write_bytes(b"\x00\x01\x02\xff" * 256)
    (root / "empty.txt").write_text("")
    return root
