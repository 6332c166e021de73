"""The artifact URIs the server really uses, and the SFTP store that serves sftp:// ones."""

from __future__ import annotations

import socket

from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_host import (
    is_local_address,
    redact_uri,
    version_tuple,
)
from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_report import TOOLKIT_SERVER_FIX
from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_uri import split_sftp_uri


class ArtifactUriChecks:
    """Checks of the artifact URIs and of the SFTP store in the server's Python."""

    def artifact_uris(self):
        """(label, uri) pairs that MLflow really uses for artifacts."""
        uris = []
        root = self.conf["artifact_root"]
        if root.startswith("mlflow-artifacts:"):
            if self.conf["serve"]:
                uris.append(("--artifacts-destination", self.conf["destination"]))
        else:
            uris.append(("--default-artifact-root", root))
        return uris

    def check_artifact_uri(self):
        """Check each artifact URI MLflow uses; collect the sftp:// targets in self.targets."""
        self.targets = []
        fallback_user = self.proc_user or "root"
        uris = self.artifact_uris()
        if self.conf["artifact_root"].startswith("mlflow-artifacts:") and not self.conf["serve"]:
            self.r.error(
                "artifact_uri",
                "--default-artifact-root mlflow-artifacts:/ with --no-serve-artifacts: "
                "no artifact can be stored",
                "drop --no-serve-artifacts or give an sftp:// root",
            )
        for label, uri in uris:
            if not uri.lower().startswith("sftp:"):
                if uri.startswith(("/", "./", "file:")) or "://" not in uri:
                    path = uri[len("file://") :] if uri.startswith("file://") else uri
                    relative = not path.startswith("/")
                    if relative:
                        self.r.warn(
                            "artifact_uri",
                            f"{label} {uri} is a path relative to the server's working "
                            f"directory ({self.cwd or '?'})",
                            "use an absolute sftp:// URI: sftp://mlops@HOST:22/home/mlops/mlflow/mlruns",
                        )
                    else:
                        self.r.warn(
                            "artifact_uri",
                            f"{label} {uri} is a local directory: clients on other machines cannot reach it",
                            "use sftp://mlops@HOST:22/home/mlops/mlflow/mlruns",
                        )
                else:
                    self.r.ok("artifact_uri", f"{label} {redact_uri(uri)} (not sftp://: SFTP checks skipped)")
                continue
            parsed = split_sftp_uri(uri, fallback_user)
            errors = [t for lvl, t in parsed["problems"] if lvl == "error"]
            warns = [t for lvl, t in parsed["problems"] if lvl == "warn"]
            fix = (
                f"use {label} {parsed['corrected']}"
                if parsed["corrected"]
                else "use sftp://mlops@HOST:22/ABSOLUTE/PATH"
            )
            for text in errors:
                self.r.error("artifact_uri", f"{label} {redact_uri(uri)}: {text}", fix)
            for text in warns:
                self.r.warn("artifact_uri", f"{label} {redact_uri(uri)}: {text}", fix)
            if not errors and not warns:
                mode = (
                    "proxied (clients need no keys)"
                    if label == "--artifacts-destination"
                    else "direct (clients need keys and known_hosts too)"
                )
                self.r.ok("artifact_uri", f"{label} {redact_uri(uri)}: well-formed; artifacts are {mode}")
            if parsed["host"]:
                host = parsed["host"]
                try:
                    socket.getaddrinfo(host, None)
                except OSError:
                    self.r.error(
                        "artifact_host",
                        f"artifact host '{host}' does not resolve",
                        "add it to DNS or /etc/hosts, or use its IP address in the URI",
                    )
                target = {
                    "uri": redact_uri(uri),
                    "label": label,
                    "user": parsed["user"] or fallback_user,
                    "host": host,
                    "port": parsed["port"] or 22,
                    "path": parsed["path"],
                    "corrected": parsed["corrected"],
                    "server": self.p["server_name"],
                    "local": is_local_address(host),
                }
                self.targets.append(target)
        self.discovered["targets"] = self.targets

    def store_kind(self):
        """Which SFTP store the server's Python has: plugin, pysftp or none."""
        if self.py["plugin"]:
            return "plugin"
        if self.py["pysftp"]:
            return "pysftp"
        return "none"

    def check_store(self):
        """Check that the server's Python can serve sftp:// artifacts, and how well."""
        if not self.targets:
            return
        if not self.site_dirs:
            self.r.warn(
                "sftp_store",
                "could not find the Python environment of the server: the SFTP store in use is unknown",
                "run the server from a venv (the toolkit uses /opt/mlflow)",
            )
            return
        kind = self.store_kind()
        where = self.prefix or "?"
        paramiko = self.py["paramiko"]
        if kind == "plugin":
            self.r.ok(
                "sftp_store",
                f"sftp:// goes through the plugin {self.py['plugin']} in {where} "
                f"(paramiko {paramiko}): any OpenSSH key type, strict known_hosts, reconnects",
            )
        elif kind == "pysftp":
            if paramiko and version_tuple(paramiko) >= (4,):
                self.r.error(
                    "sftp_store",
                    f"MLflow's stock store uses pysftp {self.py['pysftp']} but paramiko "
                    f"{paramiko} is installed in {where}: `import pysftp` fails (DSSKey) and every "
                    "artifact access returns HTTP 500",
                    f"{where}/bin/pip install 'paramiko<4', or install the toolkit's sftp plugin "
                    f"({TOOLKIT_SERVER_FIX})",
                )
            else:
                self.r.warn(
                    "sftp_store",
                    f"MLflow's stock pysftp store is in use ({where}, pysftp "
                    f"{self.py['pysftp']}, paramiko {paramiko}): RSA keys only, host keys looked up by bare "
                    "name, and after the SSH sessions drop (artifact host reboot) uploads fail until "
                    "MLflow is restarted",
                    f"install the toolkit's mlflow-sftp-store plugin ({TOOLKIT_SERVER_FIX})",
                )
        else:
            self.r.error(
                "sftp_store",
                f"neither pysftp nor an sftp plugin is installed in {where}: every sftp:// "
                "artifact access fails",
                f"{TOOLKIT_SERVER_FIX} (installs the sftp plugin)",
            )
