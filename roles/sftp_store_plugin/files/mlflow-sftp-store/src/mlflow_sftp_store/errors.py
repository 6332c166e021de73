"""Exceptions raised by the SFTP artifact repository."""

from __future__ import annotations

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    BAD_REQUEST,
    INTERNAL_ERROR,
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
)

# The package re-exports these (mlflow_sftp_store/__init__.py).
__all__ = [
    "SftpAuthenticationError",
    "SftpConfigError",
    "SftpConnectionError",
    "SftpHostKeyError",
    "SftpNotFoundError",
    "SftpPermissionError",
    "SftpStoreError",
    "SftpUploadSourceError",
    "SftpUriError",
]


class SftpStoreError(MlflowException):
    """Base class of every error this plugin raises."""

    def __init__(self, message: str, error_code: int = INTERNAL_ERROR) -> None:
        super().__init__(message, error_code=error_code)


class SftpConfigError(SftpStoreError):
    """A setting (environment variable, URI) is unusable."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


class SftpUriError(SftpConfigError):
    """The artifact URI is malformed (relative path, ``~``, scp-style ``host:path``...)."""


class SftpConnectionError(SftpStoreError):
    """The SSH server could not be reached or the connection broke twice in a row."""


class SftpAuthenticationError(SftpStoreError):
    """No key (file or ssh-agent) was accepted by the server."""


class SftpHostKeyError(SftpStoreError):
    """The server's host key is unknown or does not match known_hosts."""


class SftpPermissionError(SftpStoreError):
    """The remote user may not read or write a remote path."""


class SftpNotFoundError(SftpStoreError):
    """A remote file or directory does not exist."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=RESOURCE_DOES_NOT_EXIST)


class SftpUploadSourceError(SftpStoreError):
    """Reading what was to be uploaded (a streamed request body) failed; nothing was stored."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=BAD_REQUEST)
