"""MLflow artifact repository plugin for ``sftp://`` URIs, built on paramiko (no pysftp)."""

# Import MLflow's registry first: it loads this package's entry point while being built, and that
# must not happen while one of our own modules is half-imported (``import mlflow_sftp_store`` first).
import mlflow.store.artifact.artifact_repository_registry  # noqa: F401  isort: skip

from mlflow_sftp_store import errors
from mlflow_sftp_store.errors import *  # noqa: F403  the exceptions, listed in errors.__all__
from mlflow_sftp_store.repository import SftpArtifactRepository

__version__ = "1.2.1"

__all__ = ["SftpArtifactRepository", *errors.__all__, "__version__"]
