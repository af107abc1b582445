"""Scan: the files under a root that match the include globs and not the exclude globs.

Globs match the POSIX path relative to the root, with `**` spanning folders: `**/*.md` matches `a.md`
and `x/y/a.md`, `docs/**` everything under docs, and `*.md` only the root's own files. `{a,b}` braces
are expanded. Exclude wins over include.

Hidden files and folders (a name starting with ".") are skipped unless an include pattern names them
with an explicit leading dot (`.github/**`, `**/.*`): `*` and `**` do not match them, as in a shell
without dotglob, so a stray `.env` is never indexed by default. Exclude patterns do match hidden
paths, so `**/*.log` excludes `.github/x.log` too. Version-control, dependency and recovery folders
(ALWAYS_SKIPPED_DIRS) are skipped whatever the patterns say.

The scan never follows a symbolic link: linked folders are not entered and linked files are not
listed. A link that points inside the root is skipped silently (its target is listed under its own
path, so nothing is indexed twice); one that points outside is rejected, so nothing outside the root
is ever read, and so is a link in a loop or to nothing. Only regular files are listed: a FIFO, socket
or device is never opened, and is rejected with what it is.

A subfolder that cannot be listed is rejected (unless the exclude globs cover it) rather than silently
missing, since its documents would otherwise look deleted; an unreadable root raises.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wcmatch import fnmatch, glob

INCLUDE_FLAGS = glob.GLOBSTAR | glob.BRACE
EXCLUDE_FLAGS = INCLUDE_FLAGS | glob.DOTGLOB
ALWAYS_SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", "lost+found"})
_PATTERN_LIMIT = 1000
_WINDOWS_ABSOLUTE = re.compile(r"^[A-Za-z]:[/\\]")


class InvalidGlobError(ValueError):
    def __init__(self, pattern: str, field: str, problem: str) -> None:
        super().__init__(f"{field}: invalid glob {pattern!r}: {problem}")
        self.pattern = pattern
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class ScannedFile:
    relpath: str
    path: Path
    size: int
    mtime: float


@dataclass(frozen=True, slots=True)
class RejectedFile:
    """A path the globs select that will not be indexed; the indexer records it as a failed document."""

    relpath: str
    reason: str


@dataclass(frozen=True, slots=True)
class ScanResult:
    files: list[ScannedFile]
    """Sorted by relpath."""
    rejected: list[RejectedFile]
    """Sorted by relpath."""


def validate_globs(patterns: Sequence[str], field: str) -> None:
    """Raise InvalidGlobError, naming `field`, for the first pattern that cannot select files in the root."""
    if isinstance(patterns, str):
        raise InvalidGlobError(patterns, field, "expected a list of patterns, not a single string")
    for pattern in patterns:
        problem = _glob_problem(pattern)
        if problem is not None:
            raise InvalidGlobError(str(pattern), field, problem)


def scan(
    root: Path,
    include: Sequence[str] = ("**",),
    exclude: Sequence[str] = (),
    max_file_bytes: int = 10 * 1024 * 1024,
) -> ScanResult:
    """List the regular files under `root` selected by the globs (an empty include selects everything).

    Raises FileNotFoundError or NotADirectoryError for a bad root, InvalidGlobError for a bad pattern,
    and the OSError of listing the root itself, so an unreadable root never looks like an empty one.
    """
    validate_globs(include, "include")
    validate_globs(exclude, "exclude")
    if not root.exists():
        raise FileNotFoundError(f"folder to index does not exist: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"folder to index is not a directory: {root}")
    root = root.resolve()
    selector = _Selector(list(include) or ["**"], list(exclude))

    files: list[ScannedFile] = []
    rejected: list[RejectedFile] = []
    pending: list[tuple[Path, str]] = [(root, "")]
    while pending:
        directory, prefix = pending.pop()
        try:
            with os.scandir(directory) as listing:
                entries = list(listing)
        except OSError as exc:
            if not prefix:
                raise
            if not selector.excludes_folder(prefix):
                rejected.append(RejectedFile(prefix.rstrip("/"), f"cannot list the folder: {_strerror(exc)}"))
            continue
        for entry in entries:
            relpath = prefix + entry.name
            if _is_real_directory(entry):
                if selector.enters(entry.name):
                    pending.append((Path(entry.path), relpath + "/"))
                continue
            if not selector.selects(relpath):
                continue
            outcome = _inspect(root, Path(entry.path), relpath, max_file_bytes)
            if isinstance(outcome, ScannedFile):
                files.append(outcome)
            elif outcome is not None:
                rejected.append(outcome)
    files.sort(key=lambda f: f.relpath)
    rejected.sort(key=lambda r: r.relpath)
    return ScanResult(files, rejected)


class _Selector:
    def __init__(self, include: list[str], exclude: list[str]) -> None:
        self._include = glob.compile(include, flags=INCLUDE_FLAGS, limit=_PATTERN_LIMIT)
        self._exclude = glob.compile(exclude, flags=EXCLUDE_FLAGS, limit=_PATTERN_LIMIT) if exclude else None
        # Path segments that can name a hidden folder; only those folders are worth entering.
        self._hidden_segments = [
            segment
            for pattern in include
            for segment in pattern.split("/")
            if segment.startswith(".") or "{." in segment or ",." in segment
        ]

    def selects(self, relpath: str) -> bool:
        return bool(self._include.match(relpath)) and not (self._exclude and self._exclude.match(relpath))

    def enters(self, name: str) -> bool:
        if name in ALWAYS_SKIPPED_DIRS:
            return False
        if not name.startswith("."):
            return True
        return bool(self._hidden_segments) and fnmatch.fnmatch(
            name, self._hidden_segments, flags=fnmatch.BRACE, limit=_PATTERN_LIMIT
        )

    def excludes_folder(self, prefix: str) -> bool:
        """Whether the exclude patterns cover everything in the folder (`prefix` ends with "/")."""
        return bool(self._exclude and self._exclude.match(prefix + "\x00"))


def _is_real_directory(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False  # inspected as a file, where the failing stat becomes the rejection reason


def _inspect(root: Path, path: Path, relpath: str, max_file_bytes: int) -> ScannedFile | RejectedFile | None:
    try:
        info = path.lstat()
    except OSError as exc:
        return RejectedFile(relpath, f"cannot stat the file: {_strerror(exc)}")
    if stat.S_ISLNK(info.st_mode):
        # realpath (not Path.resolve) because it does not raise on a symlink loop in Python 3.11.
        if not Path(os.path.realpath(path)).is_relative_to(root):
            return RejectedFile(relpath, "symlink points outside the root")
        try:
            path.stat()
        except OSError as exc:
            # Nothing inside the root lists it under another path, so it would vanish without a word.
            return RejectedFile(relpath, "symlink loop" if exc.errno == errno.ELOOP else "symlink to nothing")
        return None
    if not stat.S_ISREG(info.st_mode):
        return RejectedFile(relpath, f"not a regular file ({_special_kind(info.st_mode)})")
    if info.st_size > max_file_bytes:
        return RejectedFile(relpath, f"larger than the {max_file_bytes}-byte limit ({info.st_size} bytes)")
    return ScannedFile(relpath, path, info.st_size, info.st_mtime)


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device"


def _strerror(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _glob_problem(pattern: object) -> str | None:
    if not isinstance(pattern, str) or not pattern.strip():
        return "empty pattern"
    if pattern.startswith("/") or _WINDOWS_ABSOLUTE.match(pattern):
        return "must be relative to the folder being indexed"
    segments = pattern.split("/")
    if ".." in segments:
        return "must not leave the folder ('..')"
    if "." in segments or "" in segments[:-1]:
        return "must not contain '.' or empty path segments (paths are matched as 'docs/a.md')"
    if pattern.endswith("/"):
        return f"matches files, not folders: use {pattern + '**'!r} for everything under a folder"
    if _has_unclosed_bracket(pattern):
        return "unclosed '[' (write '[[]' or '\\[' for a literal bracket)"
    if _brace_depths_unbalanced(pattern):
        return "unbalanced '{' and '}'"
    try:
        glob.compile(pattern, flags=EXCLUDE_FLAGS, limit=_PATTERN_LIMIT)
    except Exception as exc:  # wcmatch raises ValueError and its own PatternLimitException
        return str(exc) or type(exc).__name__
    return None


def _has_unclosed_bracket(pattern: str) -> bool:
    """Glob rules: `\\` escapes; a `]` first in a class (after an optional `!` or `^`) is literal."""
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            j = i + 1
            if j < len(pattern) and pattern[j] in "!^":
                j += 1
            if j < len(pattern) and pattern[j] == "]":
                j += 1
            close = pattern.find("]", j)
            if close < 0:
                return True
            i = close
        i += 1
    return False


def _brace_depths_unbalanced(pattern: str) -> bool:
    depth = 0
    escaped = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                return True
    return depth != 0
