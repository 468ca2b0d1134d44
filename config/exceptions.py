"""One place where domain errors become HTTP responses."""

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class DomainError(Exception):
    """A refusal by a domain rule; every transport renders it for its own clients.

    `code` is stable and machine-readable, `message` is for people, and `http_status`
    is what REST answers with.
    """

    code = "refused"
    http_status = status.HTTP_400_BAD_REQUEST
    # The input field the refusal is about, if any; REST files the message under it.
    field: str | None = None

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message}

    def context(self) -> dict:
        """What else the client should know (e.g. the current state of the thing)."""
        return {}


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        body = {exc.field or "__all__": [exc.message], "code": exc.code, **exc.context()}
        return Response(body, status=exc.http_status)
    return drf_exception_handler(exc, context)
