"""Who may do what: principals, their role and the collections in their scope.

Pure: no database, no HTTP. The gateway turns a bearer credential (API key or OIDC token) into a
`Principal`; every route then asks `authorize` before touching a collection, so the rule lives here once.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from semantik.core.errors import ForbiddenError, InvalidInputError, OutOfScopeError, SemantikError


class Role(enum.StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def covers(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANKS = {Role.READ: 0, Role.WRITE: 1, Role.ADMIN: 2}

# Scope patterns are collection names with `*` and `?` wildcards; nothing else, so matching stays a
# linear fnmatch over two short strings and a pattern can never mean more than it looks.
SCOPE_PATTERN = re.compile(r"^[a-z0-9*?-]{1,63}$")
MAX_SCOPES = 100
ALL = "*"


def validate_scopes(scopes: Sequence[str], *, field: str = "collections") -> tuple[str, ...]:
    if not scopes:
        raise InvalidInputError("name at least one collection or pattern ('*' for all)", field=field)
    if len(scopes) > MAX_SCOPES:
        raise InvalidInputError(f"at most {MAX_SCOPES} collection patterns", field=field)
    for scope in scopes:
        if not SCOPE_PATTERN.fullmatch(scope):
            raise InvalidInputError(
                f"invalid collection pattern {scope!r}: lower-case letters, digits, '-', '*' and '?'", field=field
            )
    return tuple(dict.fromkeys(scopes))


class PrincipalKind(enum.StrEnum):
    LOCAL = "local"  # auth is off (loopback): the person at the machine
    KEY = "key"
    OIDC = "oidc"


@dataclass(frozen=True, slots=True)
class Grant:
    """A role over the collections matching any of `scopes`."""

    role: Role
    scopes: tuple[str, ...]

    def sees(self, collection: str) -> bool:
        return any(fnmatchcase(collection, scope) for scope in self.scopes)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking. An API key holds one grant; an OIDC token one per mapped group.

    Grants are never merged: an admin of `team-a-*` who also reads `*` is an admin of team-a's
    collections and a reader of the rest, not an admin of everything.
    """

    kind: PrincipalKind
    subject: str  # what the audit trail names: "key:3 ci-bot", "oidc:alice@example.com", "local"
    grants: tuple[Grant, ...]

    def role_on(self, collection: str) -> Role | None:
        roles = [grant.role for grant in self.grants if grant.sees(collection)]
        return max(roles, key=lambda role: role.rank) if roles else None

    def sees(self, collection: str) -> bool:
        return any(grant.sees(collection) for grant in self.grants)

    def global_role(self) -> Role | None:
        """The strongest role held over every collection (`*`), which is what keys and the audit need."""
        roles = [grant.role for grant in self.grants if ALL in grant.scopes]
        return max(roles, key=lambda role: role.rank) if roles else None


LOCAL = Principal(PrincipalKind.LOCAL, "local", (Grant(Role.ADMIN, (ALL,)),))


def authorize(principal: Principal, collection: str, needed: Role, *, field: str = "name") -> None:
    """404 outside the principal's scope (the collection's existence is not revealed), 403 for too weak a role.

    The scope check comes first so that a caller cannot learn a name exists from a 403.
    """
    _check(principal, collection, needed, OutOfScopeError(f"collection {collection!r} does not exist", field=field))


def authorize_new(principal: Principal, collection: str, needed: Role, *, field: str = "name") -> None:
    """For a collection about to be made: a name outside the scope is a 403, since nothing exists to hide."""
    outside = ForbiddenError(f"{principal.subject} may not act on collections named {collection!r}", field=field)
    _check(principal, collection, needed, outside)


def _check(principal: Principal, collection: str, needed: Role, outside_scope: SemantikError) -> None:
    role = principal.role_on(collection)
    if role is None:
        raise outside_scope
    if not role.covers(needed):
        raise ForbiddenError(
            f"this needs the {needed.value} role on {collection!r}; {principal.subject} has {role.value}"
        )


def require_global(principal: Principal, needed: Role) -> None:
    """For what spans every collection (API keys, the audit trail): `needed` over `*`."""
    role = principal.global_role()
    if role is None or not role.covers(needed):
        raise ForbiddenError(f"this needs the {needed.value} role over every collection ('*')")
