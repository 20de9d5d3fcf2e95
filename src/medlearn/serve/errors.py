"""The service's one error type: an HTTP status and one clear message, sent as ``{"error": message}``."""

from __future__ import annotations


class ServiceError(Exception):
    """A request the service refuses: ``status`` (4xx) and a one-line ``message`` naming no file and no
    patient (messages name uploads by their position: "upload 2")."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def bad_request(message: str) -> ServiceError:
    return ServiceError(400, message)


def too_large(message: str) -> ServiceError:
    return ServiceError(413, message)


def unsupported(message: str) -> ServiceError:
    return ServiceError(415, message)


def malformed(message: str) -> ServiceError:
    return ServiceError(422, message)
