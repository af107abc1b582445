"""Who may do what: scopes match names, grants stay separate, and refusals do not reveal what exists."""

from __future__ import annotations

import pytest

from semantik.core.access import (
    LOCAL,
    Grant,
    Principal,
    PrincipalKind,
    Role,
    authorize,
    authorize_new,
    require_global,
    validate_scopes,
)
from semantik.core.errors import ForbiddenError, InvalidInputError, NotFoundError


def key(role: Role, *scopes: str) -> Principal:
    return Principal(PrincipalKind.KEY, "key:1 test", (Grant(role, scopes),))


def test_roles_are_ordered() -> None:
    assert Role.ADMIN.covers(Role.WRITE) and Role.WRITE.covers(Role.READ) and Role.READ.covers(Role.READ)
    assert not Role.READ.covers(Role.WRITE) and not Role.WRITE.covers(Role.ADMIN)


@pytest.mark.parametrize(
    ("scopes", "name", "sees"),
    [
        (("*",), "anything", True),
        (("handbook",), "handbook", True),
        (("handbook",), "handbook-2", False),
        (("team-a-*",), "team-a-docs", True),
        (("team-a-*",), "team-b-docs", False),
        (("team-?",), "team-a", True),
        (("team-?",), "team-ab", False),
        (("docs", "wiki-*"), "wiki-eng", True),
    ],
)
def test_scope_patterns_match_whole_names(scopes: tuple[str, ...], name: str, sees: bool) -> None:
    assert key(Role.READ, *scopes).sees(name) is sees


def test_outside_the_scope_is_the_same_404_as_a_missing_collection() -> None:
    with pytest.raises(NotFoundError) as outside:
        authorize(key(Role.ADMIN, "team-a-*"), "team-b-docs", Role.READ)
    assert outside.value.message == "collection 'team-b-docs' does not exist"
    assert outside.value.field == "name"


def test_too_weak_a_role_is_403() -> None:
    with pytest.raises(ForbiddenError, match="write role"):
        authorize(key(Role.READ, "*"), "docs", Role.WRITE)
    authorize(key(Role.WRITE, "*"), "docs", Role.WRITE)


def test_grants_are_never_merged() -> None:
    # An admin of team-a who also reads everything must not become an admin of everything.
    person = Principal(PrincipalKind.OIDC, "oidc:bob", (Grant(Role.ADMIN, ("team-a-*",)), Grant(Role.READ, ("*",))))
    authorize(person, "team-a-docs", Role.ADMIN)
    authorize(person, "team-b-docs", Role.READ)
    with pytest.raises(ForbiddenError):
        authorize(person, "team-b-docs", Role.WRITE)
    assert person.global_role() is Role.READ
    with pytest.raises(ForbiddenError):
        require_global(person, Role.ADMIN)


def test_keys_and_the_audit_need_admin_over_every_collection() -> None:
    require_global(key(Role.ADMIN, "*"), Role.ADMIN)
    require_global(LOCAL, Role.ADMIN)
    for principal in (key(Role.ADMIN, "team-*"), key(Role.WRITE, "*")):
        with pytest.raises(ForbiddenError):
            require_global(principal, Role.ADMIN)


def test_a_new_collection_outside_the_scope_is_403_not_404() -> None:
    with pytest.raises(ForbiddenError, match="may not act on collections named 'b-docs'"):
        authorize_new(key(Role.WRITE, "a-*"), "b-docs", Role.WRITE)
    with pytest.raises(ForbiddenError, match="write role"):
        authorize_new(key(Role.READ, "a-*"), "a-docs", Role.WRITE)
    authorize_new(key(Role.WRITE, "a-*"), "a-docs", Role.WRITE)


def test_a_principal_with_no_grant_sees_nothing() -> None:
    nobody = Principal(PrincipalKind.OIDC, "oidc:eve", ())
    assert not nobody.sees("a") and not nobody.sees("b") and nobody.global_role() is None
    with pytest.raises(NotFoundError):
        authorize(nobody, "a", Role.READ)


@pytest.mark.parametrize("bad", [[], ["UPPER"], ["a/b"], ["[a-z]*"], ["x" * 64], ["*"] * 101, ["a.*"]])
def test_scope_patterns_are_checked(bad: list[str]) -> None:
    with pytest.raises(InvalidInputError) as error:
        validate_scopes(bad)
    assert error.value.field == "collections"


def test_duplicate_patterns_collapse_in_order() -> None:
    assert validate_scopes(["b", "a", "b"]) == ("b", "a")
