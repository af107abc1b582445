"""The one domain exception type; the gateway and the CLI turn it into their own error shapes."""

from __future__ import annotations


class SemantikError(Exception):
    """A failure with a stable code, an HTTP status and, for bad input, the field at fault."""

    code = "internal_error"
    status = 500

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInputError(SemantikError):
    code = "invalid_input"
    status = 422


class NotFoundError(SemantikError):
    code = "not_found"
    status = 404


class OutOfScopeError(NotFoundError):
    """Outside the caller's scope: answered exactly as a missing thing, but the audit records a denial."""


class ConflictError(SemantikError):
    code = "conflict"
    status = 409


class UnauthorizedError(SemantikError):
    code = "unauthorized"
    status = 401


class ForbiddenError(SemantikError):
    code = "forbidden"
    status = 403


class ModelUnavailableError(SemantikError):
    """The model's files are not where the settings say; Semantik never downloads a model."""

    code = "model_unavailable"
    status = 503


class BackendUnavailableError(SemantikError):
    code = "backend_unavailable"
    status = 503
