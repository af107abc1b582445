"""The source-root check: a path is inside a root only when its real path is, component by component."""

from __future__ import annotations

from pathlib import Path

import pytest

from semantik.core.errors import ForbiddenError
from semantik.core.pipeline.roots import outside_roots_message, parse_roots, require_within_roots, within_roots
from semantik.core.settings import Settings
from semantik.worker.config import WorkerConfig


@pytest.fixture
def root(tmp_path: Path) -> Path:
    docs = tmp_path / "srv" / "docs"
    (docs / "team").mkdir(parents=True)
    (tmp_path / "srv" / "docs-evil").mkdir()
    (tmp_path / "etc").mkdir()
    (docs / "out").symlink_to(tmp_path / "etc", target_is_directory=True)
    (docs / "in").symlink_to(docs / "team", target_is_directory=True)
    return docs


def test_paths_inside_the_root_pass(root: Path) -> None:
    for path in (root, root / "team", f"{root}/", f"{root}/./team", f"{root}/team/../team", root / "in", root / "new"):
        assert within_roots(path, [root]), path


def test_escapes_are_refused(root: Path) -> None:
    srv = root.parent
    for path in (
        srv / "docs-evil",  # a string prefix of the root, not a folder inside it
        f"{root}/../etc",
        f"{root}/../docs-evil/x",
        root / "out",  # a link inside the root to a folder outside
        root / "out" / "passwd",
        srv,
        "/",
        f"{root}\x00",
    ):
        assert not within_roots(path, [root]), path


def test_a_root_given_through_a_link_is_compared_by_its_real_path(root: Path, tmp_path: Path) -> None:
    (tmp_path / "alias").symlink_to(root, target_is_directory=True)
    assert within_roots(root / "team", [tmp_path / "alias"])
    assert within_roots(tmp_path / "alias" / "team", [root])
    assert not within_roots(tmp_path / "etc", [tmp_path / "alias"])


def test_messages_name_the_setting_and_no_roots_refuses_everything(root: Path) -> None:
    assert outside_roots_message(root, [root]) is None
    none = outside_roots_message(root, [])
    assert none is not None and "no source folder is allowed" in none and "SEMANTIK_SOURCE_ROOTS" in none
    outside = outside_roots_message(root.parent / "docs-evil", [root])
    assert outside is not None and "SEMANTIK_SOURCE_ROOTS" in outside and str(root) in outside
    with pytest.raises(ForbiddenError) as refused:
        require_within_roots(str(root / "out"), [root], "source_path")
    assert refused.value.status == 403 and refused.value.field == "source_path"
    require_within_roots(None, [], "path")  # no path: the caller's own "give a path" error applies


def test_roots_are_read_from_json_or_separated_text(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_roots('["/a", "/b c"]') == ["/a", "/b c"]
    assert parse_roots("/a, /b:/c") == ["/a", "/b", "/c"]
    assert parse_roots("") == []
    monkeypatch.setenv("SEMANTIK_SOURCE_ROOTS", '["/srv/docs"]')
    assert Settings().source_roots == [Path("/srv/docs")]
    monkeypatch.setenv("SEMANTIK_SOURCE_ROOTS", "/srv/docs,/data")
    assert WorkerConfig().source_roots == [Path("/srv/docs"), Path("/data")]
    monkeypatch.delenv("SEMANTIK_SOURCE_ROOTS")
    assert Settings().source_roots == [] and WorkerConfig().source_roots == []
