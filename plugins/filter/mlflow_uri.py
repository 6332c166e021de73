"""Filters for the mlflow role's sftp:// artifact URI (the parser is module_utils/sftp_uri.py).

- ``uri_or_parts | mlops.mlflow.mlflow_sftp_uri_check(default_user='mlops', default_port=22, home=None)``
  returns ``{ok, uri, error, suggestion, problems, user, host, port, path}``. ``uri_or_parts`` is
  either a URI string or a dict ``{host, port, path, user}`` (the inventory's parts). ``uri`` is
  the normalised URI when ``ok`` (port always written), else the input; ``suggestion`` is the
  corrected URI (or ``None`` when it cannot be guessed, e.g. no host at all).
- ``mlops.mlflow.mlflow_sftp_uri_compose(host, path, user='mlops', port=22)`` builds the URI from parts.
- ``uri | mlops.mlflow.mlflow_sftp_uri_parts`` returns ``{user, host, port, path}`` of a valid URI.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.mlops.mlflow.plugins.module_utils.sftp_uri import check, compose, parts_of

mlflow_sftp_uri_check = check
mlflow_sftp_uri_compose = compose
mlflow_sftp_uri_parts = parts_of


class FilterModule:
    """Ansible filters for the mlflow role's artifact URI."""

    def filters(self) -> dict[str, Any]:
        """The filters by name."""
        return {
            "mlflow_sftp_uri_check": check,
            "mlflow_sftp_uri_compose": compose,
            "mlflow_sftp_uri_parts": parts_of,
        }
