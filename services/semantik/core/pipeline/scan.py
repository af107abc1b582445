"""Scan: the files under a root that match the include globs and not the exclude globs.

Globs match the POSIX path relative to the root, with `**` spanning folders (`**/*.md` matches `a.md`
and `x/y/a.md`; `docs/**` everything under docs). Exclude wins over include. Version-control and
dependency folders, and hidden folders, are skipped unless an include pattern names them explicitly.
The scan never follows a symbolic link: linked folders are not entered, linked files are skipped
(one inside the root is indexed under its own path; one pointing outside is rejected), so nothing
outside the root is ever read. Only regular files are listed: a FIFO or a device is never opened.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wcmatch import glob

GLOB_FLAGS = glob.GLOBSTAR | glob.DOTGLOB | glob.BRACE
ALWAYS_SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv"})


class InvalidGlobError(ValueError):
    def __init__(self, pattern: str, field: str, problem: str) -> None:
        super().__init__(f"{field}: invalid glob {pattern!r}: {problem}")
        self.pattern = pattern
        self.field = field


@dataclass(frozen=True, slots=True)
class ScannedFile:
    relpath: str
    path: Path
    size: int
    mtime: float


@dataclass(frozen=True, slots=True)
class RejectedFile:
    relpath: str
    reason: str


@dataclass(frozen=True, slots=True)
class ScanResult:
    files: list[ScannedFile]
    rejected: list[RejectedFile]


def validate_globs(patterns: Sequence[str], field: str) -> None:
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern.strip():
            raise InvalidGlobError(str(pattern), field, "empty pattern")
        if pattern.startswith("/") or (len(pattern) > 1 and pattern[1] == ":"):
            raise InvalidGlobError(pattern, field, "must be relative to the folder being indexed")
        if ".." in pattern.split("/"):
            raise InvalidGlobError(pattern, field, "must not leave the folder ('..')")
        if pattern.count("[") != pattern.count("]") or pattern.count("{") != pattern.count("}"):
            raise InvalidGlobError(pattern, field, "unbalanced brackets or braces")
        try:
            glob.translate(pattern, flags=GLOB_FLAGS)
        except (ValueError, RecursionError) as exc:
            raise InvalidGlobError(pattern, field, str(exc)) from None


def scan(
    root: Path,
    include: Sequence[str] = ("**",),
    exclude: Sequence[str] = (),
    max_file_bytes: int = 10 * 1024 * 1024,
) -> ScanResult:
    validate_globs(include, "include")
    validate_globs(exclude, "exclude")
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a directory")
    root = root.resolve()
    include_patterns = list(include) or ["**"]
    explicit_dirs = {part for pattern in include_patterns for part in pattern.split("/") if part.startswith(".")}

    files: list[ScannedFile] = []
    rejected: list[RejectedFile] = []
    for directory, dirnames, filenames in os.walk(root, followlinks=False, onerror=None):
        base = Path(directory)
        dirnames[:] = sorted(
            name
            for name in dirnames
            if name not in ALWAYS_SKIPPED_DIRS
            and (not name.startswith(".") or name in explicit_dirs)
            and not (base / name).is_symlink()
        )
        for name in sorted(filenames):
            path = base / name
            relpath = path.relative_to(root).as_posix()
            if not _matches(relpath, include_patterns, exclude):
                continue
            outcome = _inspect(root, path, relpath, max_file_bytes)
            if isinstance(outcome, ScannedFile):
                files.append(outcome)
            elif outcome is not None:
                rejected.append(outcome)
    files.sort(key=lambda f: f.relpath)
    rejected.sort(key=lambda r: r.relpath)
    return ScanResult(files, rejected)


def _matches(relpath: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    if not glob.globmatch(relpath, list(include), flags=GLOB_FLAGS):
        return False
    return not (exclude and glob.globmatch(relpath, list(exclude), flags=GLOB_FLAGS))


def _inspect(root: Path, path: Path, relpath: str, max_file_bytes: int) -> ScannedFile | RejectedFile | None:
    try:
        link = path.lstat()
        if stat.S_ISLNK(link.st_mode):
            target = path.resolve()
            if not target.is_relative_to(root):
                return RejectedFile(relpath, "symbolic link to a file outside the folder")
            return None
        if not stat.S_ISREG(link.st_mode):
            return None
    except OSError as exc:
        return RejectedFile(relpath, f"cannot stat the file: {exc.strerror or exc}")
    if link.st_size > max_file_bytes:
        return RejectedFile(relpath, f"larger than the {max_file_bytes}-byte limit ({link.st_size} bytes)")
    return ScannedFile(relpath, path, link.st_size, link.st_mtime)
