from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from pathlib import Path

import pytest

from semantik.core.pipeline.scan import (
    InvalidGlobError,
    RejectedFile,
    ScannedFile,
    scan,
    validate_globs,
)

TREE = [
    "README",
    "a.md",
    "notes.txt",
    "docs/guide.md",
    "docs/img/diagram.png",
    "docs/api/reference.md",
    "x/y/deep.md",
    "x/y/build.log",
    ".env",
    ".hidden/secret.md",
    ".github/workflows/ci.yml",
    ".git/config",
    ".git/HEAD",
    "node_modules/pkg/readme.md",
    "sub/__pycache__/module.cpython-311.pyc",
    "sub/.svn/entries",
]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "root"
    for relpath in TREE:
        path = base / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content of {relpath}\n")
    return base


def relpaths(root: Path, include: Sequence[str] = ("**",), exclude: Sequence[str] = ()) -> list[str]:
    return [f.relpath for f in scan(root, include, exclude).files]


def test_default_scan_lists_visible_files_sorted_and_skips_hidden_and_tool_folders(root: Path) -> None:
    assert relpaths(root) == [
        "README",
        "a.md",
        "docs/api/reference.md",
        "docs/guide.md",
        "docs/img/diagram.png",
        "notes.txt",
        "x/y/build.log",
        "x/y/deep.md",
    ]


def test_scanned_file_carries_absolute_path_size_and_mtime_from_stat(root: Path) -> None:
    os.utime(root / "docs/guide.md", (1_600_000_000.5, 1_700_000_000.25))

    [file] = scan(root, ["docs/guide.md"]).files

    info = (root / "docs/guide.md").stat()
    assert file == ScannedFile("docs/guide.md", root.resolve() / "docs/guide.md", info.st_size, 1_700_000_000.25)
    assert file.path.is_absolute()
    assert file.size == len("content of docs/guide.md\n")


def test_globstar_matches_at_any_depth_including_the_root(root: Path) -> None:
    assert relpaths(root, ["**/*.md"]) == ["a.md", "docs/api/reference.md", "docs/guide.md", "x/y/deep.md"]


def test_single_star_stays_in_its_folder(root: Path) -> None:
    assert relpaths(root, ["*.md"]) == ["a.md"]
    assert relpaths(root, ["docs/*.md"]) == ["docs/guide.md"]


def test_folder_globstar_matches_everything_under_it(root: Path) -> None:
    assert relpaths(root, ["docs/**"]) == ["docs/api/reference.md", "docs/guide.md", "docs/img/diagram.png"]


def test_braces_expand(root: Path) -> None:
    assert relpaths(root, ["**/*.{txt,log}"]) == ["notes.txt", "x/y/build.log"]


def test_exclude_wins_over_include(root: Path) -> None:
    assert relpaths(root, ["**/*.md"], ["docs/**"]) == ["a.md", "x/y/deep.md"]
    assert relpaths(root, ["docs/**"], ["**/*.png", "docs/api/**"]) == ["docs/guide.md"]


def test_empty_include_selects_everything(root: Path) -> None:
    assert relpaths(root, []) == relpaths(root)


def test_hidden_paths_are_included_only_when_named_with_a_leading_dot(root: Path) -> None:
    assert relpaths(root, [".hidden/**"]) == [".hidden/secret.md"]
    assert relpaths(root, ["**/.*"]) == [".env"]
    assert relpaths(root, ["{.github,docs}/**/*.yml"]) == [".github/workflows/ci.yml"]


def test_version_control_and_dependency_folders_are_skipped_even_when_named(root: Path) -> None:
    assert relpaths(root, [".git/**", "node_modules/**", "**/__pycache__/**", "**/.svn/**"]) == []


def test_exclude_patterns_apply_to_hidden_paths(root: Path) -> None:
    assert relpaths(root, [".hidden/**", "a.md"], ["**/*.md"]) == []


def test_file_over_the_size_cap_is_rejected_with_its_size(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_bytes(b"x" * 101)
    (tmp_path / "limit.txt").write_bytes(b"x" * 100)

    result = scan(tmp_path, max_file_bytes=100)

    assert [f.relpath for f in result.files] == ["limit.txt"]
    assert result.rejected == [RejectedFile("big.txt", "larger than the 100-byte limit (101 bytes)")]


def test_rejections_respect_the_globs(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(b"x" * 101)

    assert scan(tmp_path, exclude=["*.bin"], max_file_bytes=100).rejected == []


@pytest.mark.timeout(10)
def test_symlink_to_a_file_outside_the_root_is_rejected_and_never_read(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "own.txt").write_text("mine")
    outside = tmp_path / "outside"
    outside.mkdir()
    # A FIFO target: opening it would block, so a passing test proves the scan never opened it.
    os.mkfifo(outside / "pipe")
    (outside / "secret.txt").write_text("not yours")
    (root / "pipe-link").symlink_to(outside / "pipe")
    (root / "secret-link.txt").symlink_to(outside / "secret.txt")

    result = scan(root)

    assert [f.relpath for f in result.files] == ["own.txt"]
    assert result.rejected == [
        RejectedFile("pipe-link", "symlink points outside the root"),
        RejectedFile("secret-link.txt", "symlink points outside the root"),
    ]


def test_symlink_to_a_file_inside_the_root_is_listed_once_under_its_own_path(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/real.md").write_text("real")
    (tmp_path / "alias.md").symlink_to(tmp_path / "docs/real.md")

    result = scan(tmp_path)

    assert [f.relpath for f in result.files] == ["docs/real.md"]
    assert result.rejected == []


def test_symlinked_folders_are_not_entered(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "inner").mkdir(parents=True)
    (root / "inner/a.md").write_text("a")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/b.md").write_text("b")
    (root / "inner-link").symlink_to(root / "inner", target_is_directory=True)
    (root / "outside-link").symlink_to(tmp_path / "outside", target_is_directory=True)

    result = scan(root)

    assert [f.relpath for f in result.files] == ["inner/a.md"]
    assert result.rejected == [RejectedFile("outside-link", "symlink points outside the root")]


@pytest.mark.timeout(10)
def test_symlink_loops_do_not_hang(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a/file.txt").write_text("x")
    (tmp_path / "a/loop").symlink_to(tmp_path / "a", target_is_directory=True)
    (tmp_path / "ping").symlink_to(tmp_path / "pong")
    (tmp_path / "pong").symlink_to(tmp_path / "ping")
    (tmp_path / "self").symlink_to(tmp_path / "self")

    (tmp_path / "dangling").symlink_to(tmp_path / "gone")

    result = scan(tmp_path)

    assert [f.relpath for f in result.files] == ["a/file.txt"]
    # The folder link is listed under its own path; the others have no file behind them to list.
    assert result.rejected == [
        RejectedFile("dangling", "symlink to nothing"),
        RejectedFile("ping", "symlink loop"),
        RejectedFile("pong", "symlink loop"),
        RejectedFile("self", "symlink loop"),
    ]


@pytest.mark.timeout(10)
def test_fifos_and_sockets_are_rejected_unopened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.txt")
    (tmp_path / "real.txt").write_text("x")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "sock.txt"))

        result = scan(tmp_path)

    assert [f.relpath for f in result.files] == ["real.txt"]
    assert result.rejected == [
        RejectedFile("pipe.txt", "not a regular file (a FIFO)"),
        RejectedFile("sock.txt", "not a regular file (a socket)"),
    ]


def test_file_without_permissions_is_still_listed(tmp_path: Path) -> None:
    (tmp_path / "locked.txt").write_text("x")
    (tmp_path / "locked.txt").chmod(0)

    assert [f.relpath for f in scan(tmp_path).files] == ["locked.txt"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root lists folders whatever their mode")
def test_unreadable_subfolder_is_rejected_unless_excluded(tmp_path: Path) -> None:
    (tmp_path / "closed").mkdir()
    (tmp_path / "closed/a.md").write_text("x")
    (tmp_path / "closed").chmod(0)
    try:
        assert scan(tmp_path).rejected == [RejectedFile("closed", "cannot list the folder: Permission denied")]
        assert scan(tmp_path, exclude=["closed/**"]).rejected == []
    finally:
        (tmp_path / "closed").chmod(0o755)


def test_root_given_through_a_symlink_yields_paths_under_the_real_root(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real/a.md").write_text("x")
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)

    [file] = scan(tmp_path / "alias").files

    assert (file.relpath, file.path) == ("a.md", (tmp_path / "real/a.md").resolve())


def test_missing_root_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"does not exist: .*nowhere"):
        scan(tmp_path / "nowhere")


def test_file_root_raises_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")

    with pytest.raises(NotADirectoryError, match=r"not a directory: .*file.txt"):
        scan(tmp_path / "file.txt")


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("", "empty pattern"),
        ("   ", "empty pattern"),
        ("/etc/**", "must be relative"),
        ("C:/docs/**", "must be relative"),
        ("../secrets/**", "must not leave the folder"),
        ("docs/../../x", "must not leave the folder"),
        ("./docs/**", "'.' or empty path segments"),
        ("docs//a.md", "'.' or empty path segments"),
        ("docs/", "use 'docs/**'"),
        ("[abc.md", "unclosed '['"),
        ("docs/{a,b.md", "unbalanced '{' and '}'"),
        ("a}.md", "unbalanced '{' and '}'"),
        ("{a,b}{c,d}{e,f}{g,h}{i,j}{k,l}{m,n}{o,p}{q,r}{s,t}", "limit"),
    ],
)
def test_validate_globs_rejects_bad_patterns_naming_the_field(pattern: str, problem: str) -> None:
    with pytest.raises(InvalidGlobError) as caught:
        validate_globs(["**/*.md", pattern], "exclude")

    assert caught.value.field == "exclude"
    assert caught.value.pattern == pattern
    assert str(caught.value).startswith(f"exclude: invalid glob {pattern!r}: ")
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    "pattern", ["**", "**/*.md", "docs/**", "*.{md,txt}", "[]]x", "[!a]*.md", r"\[draft\]*", ".github/**"]
)
def test_validate_globs_accepts_good_patterns(pattern: str) -> None:
    validate_globs([pattern], "include")


def test_validate_globs_refuses_a_bare_string() -> None:
    with pytest.raises(InvalidGlobError, match=r"include: .*not a single string"):
        validate_globs("**/*.md", "include")


def test_scan_validates_its_globs_before_reading(tmp_path: Path) -> None:
    with pytest.raises(InvalidGlobError, match=r"^include: "):
        scan(tmp_path / "does-not-matter", include=["/abs/**"])
    with pytest.raises(InvalidGlobError, match=r"^exclude: "):
        scan(tmp_path, exclude=["../x"])
