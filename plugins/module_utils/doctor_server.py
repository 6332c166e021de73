"""The doctor on a tracking server: discovery, then one check module per concern."""

from __future__ import annotations

from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_artifact_uri import ArtifactUriChecks
from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_backups import BackupChecks
from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_database import DatabaseChecks
from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_process import ProcessChecks
from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_report import Doctor
from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_server_ssh import SshChecks
from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_service import ServiceChecks


class ServerDoctor(
    Doctor, ProcessChecks, ServiceChecks, ArtifactUriChecks, SshChecks, DatabaseChecks, BackupChecks
):
    """Read-only diagnosis of an MLflow tracking server (role=server)."""

    def __init__(self, module):
        """A doctor for this host, with the module's parameters."""
        super().__init__(module)
        self.discovered = {"source": "none", "pids": [], "targets": [], "public_keys": []}

    def run(self):
        """Run every check of the tracking server; return (report, discovered)."""
        self.discover()
        self.check_process()
        self.check_service()
        self.check_port_and_health()
        self.check_artifact_uri()
        self.check_store()
        self.check_ssh()
        self.check_database()
        return self.r, self.discovered
