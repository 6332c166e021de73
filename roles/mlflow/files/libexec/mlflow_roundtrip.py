#!/usr/bin/env python3
"""Prove an artifact round trip through an MLflow server's store (mlflow role; venv's python).

proxied mode: upload, list, download and delete a small test artifact through the server's
REST API (/api/2.0/mlflow-artifacts/...), i.e. the same path a client's log_artifact takes.
direct mode: the same round trip with MLflow's artifact repository for the sftp:// URI, as the
service account (the server lists and serves artifacts this way).

When a step fails, the store is exercised directly (as the service account, outside the
service's sandbox) to find out why, and the answer names the cause: keys, host keys,
permissions, the URI (host, port, path) or the server itself.

Credentials (proxied mode with basic auth) come on stdin as one JSON object,
{"username": ..., "password": ...}, never on the command line or in the environment, where
`ps`, sudo's log and Ansible's -vvv output would show them. No stdin (a terminal): no credentials.
Prints one JSON object; exit code 0 = artifact path works.
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import sys
import tempfile
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

ROUNDTRIP_DIR = "_mlflow_roundtrip"


class RoundTripError(Exception):
    def __init__(self, step: str, message: str, status: int | None = None):
        super().__init__(message)
        self.step = step
        self.status = status


# Basic-auth credentials read from stdin by main(); empty: the server runs without auth.
CREDENTIALS: dict[str, str] = {}


def read_credentials(stream) -> dict[str, str]:
    """The {"username", "password"} object on STREAM (empty when STREAM is a terminal or empty)."""
    if stream.isatty():
        return {}
    text = stream.read().strip()
    if not text:
        return {}
    data = json.loads(text)
    return {"username": str(data.get("username") or ""), "password": str(data.get("password") or "")}


def _request(method: str, url: str, data: bytes | None = None, timeout: float = 60) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (http://127.0.0.1)
    user = CREDENTIALS.get("username")
    password = CREDENTIALS.get("password")
    if user and password:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    if data is not None:
        request.add_header("Content-Type", "application/octet-stream")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _proxied_round_trip(base_url: str, payload: bytes, name: str) -> None:
    api = f"{base_url.rstrip('/')}/api/2.0/mlflow-artifacts/artifacts"
    folder = f"{ROUNDTRIP_DIR}/{name}"
    steps = [
        ("upload", "PUT", f"{api}/{folder}/roundtrip.txt", payload),
        ("list", "GET", f"{api}?{urllib.parse.urlencode({'path': folder})}", None),
        ("download", "GET", f"{api}/{folder}/roundtrip.txt", None),
        ("delete", "DELETE", f"{api}/{folder}", None),
    ]
    for step, method, url, data in steps:
        try:
            status, body = _request(method, url, data)
        except (urllib.error.URLError, OSError) as err:
            raise RoundTripError(step, f"cannot reach the server at {base_url}: {err}") from err
        if status != 200:  # noqa: PLR2004
            raise RoundTripError(step, f"HTTP {status}: {body[:600].decode(errors='replace')}", status)
        if step == "list":
            files = [f.get("path") for f in json.loads(body or b"{}").get("files", [])]
            if not any(str(p).endswith("roundtrip.txt") for p in files):
                raise RoundTripError(step, f"the uploaded artifact is not listed (listing: {files})")
        if step == "download" and body != payload:
            raise RoundTripError(
                step, f"downloaded {len(body)} bytes that differ from the {len(payload)} uploaded"
            )
    # Remove the (now empty) round-trip folder itself when no other round trip is running.
    status, body = _request("GET", f"{api}?{urllib.parse.urlencode({'path': ROUNDTRIP_DIR})}")
    if status == 200 and not json.loads(body or b"{}").get("files"):  # noqa: PLR2004
        _request("DELETE", f"{api}/{ROUNDTRIP_DIR}")


def _direct_round_trip(artifact_uri: str, payload: bytes, name: str) -> None:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository  # noqa: PLC0415

    step = "connect"
    try:
        repo = get_artifact_repository(f"{artifact_uri.rstrip('/')}/{ROUNDTRIP_DIR}/{name}")
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "roundtrip.txt"
            local.write_bytes(payload)
            step = "upload"
            repo.log_artifact(str(local))
            step = "list"
            listed = [f.path for f in repo.list_artifacts()]
            if "roundtrip.txt" not in listed:
                raise RoundTripError(step, f"the uploaded artifact is not listed (listing: {listed})")
            step = "download"
            # MLflow refuses a destination directory that does not exist yet.
            down = Path(tmp) / "down"
            down.mkdir()
            got = Path(repo.download_artifacts("roundtrip.txt", dst_path=str(down)))
            if got.read_bytes() != payload:
                raise RoundTripError(step, "downloaded bytes differ from the uploaded ones")
            step = "delete"
            repo.delete_artifacts()
        parent = get_artifact_repository(f"{artifact_uri.rstrip('/')}/{ROUNDTRIP_DIR}")
        if not parent.list_artifacts():
            parent.delete_artifacts()
    except RoundTripError:
        raise
    except Exception as err:
        raise RoundTripError(step, f"{type(err).__name__}: {err}") from err


def classify(text: str, uri_parts: dict) -> tuple[str, str]:
    """Map an error text to (cause, hint)."""
    host, port, user, path = uri_parts["host"], uri_parts["port"], uri_parts["user"], uri_parts["path"]
    low = text.lower()
    rules = [
        (
            ("no module named", "modulenotfounderror", "cannot import name"),
            "install",
            "the SFTP store's Python packages are missing or broken in the venv (the mlflow-sftp-store "
            "plugin, "
            "or pysftp with paramiko<4 when mlflow_sftp_plugin_enabled is false): re-run the role",
        ),
        (
            (
                "sftpauthenticationerror",
                "authenticationexception",
                "authentication failed",
                "no authentication methods",
                "publickey",
            ),
            "keys",
            f"the SSH key of the service account is not accepted by {user}@{host}:{port}: check "
            f"~/.ssh/config (IdentityFile) and the key pair of the service account, and that its public key "
            f"is in {user}'s authorized_keys on {host} (mlops_ssh role)",
        ),
        (
            (
                "unpack requires a buffer",
                "not a valid rsa private key",
                "dsskey",
                "private key file is encrypted",
            ),
            "keys",
            "MLflow's stock SFTP store (pysftp) can only load an unencrypted RSA key: use an RSA key "
            "(mlops_ssh_key_type: rsa) or enable the SFTP plugin (mlflow_sftp_plugin_enabled: true)",
        ),
        (
            (
                "sftphostkeyerror",
                "no hostkey",
                "host key",
                "hostkeys",
                "known_hosts",
                "badhostkey",
                "not found in known",
            ),
            "host keys",
            f"the host key of {host} (port {port}) is missing from or differs from the service account's "
            f"~/.ssh/known_hosts: re-run the mlops_ssh role (it records both '{host}' and '[{host}]:{port}')",
        ),
        (
            (
                "sftppermissionerror",
                "permission denied",
                "errno 13",
                "permissionerror",
                "operation not permitted",
            ),
            "permissions",
            f"{user} may not write under {path} on {host}: check owner and mode of the artifact root "
            f"(artifact_store role: owner {user}, directories 2750)",
        ),
        (
            ("sftpnotfounderror", "no such file", "errno 2", "filenotfounderror", "does not exist"),
            "uri",
            f"{path} does not exist on {host}: check the URI's path (mlflow_artifact_path / "
            "mlflow_artifact_uri, absolute, no '~') and the artifact_store role's artifact_store_root",
        ),
        (
            (
                "sftpurierror",
                "sftpconfigerror",
                "connection refused",
                "errno 111",
                "unable to connect",
                "novalidconnections",
            ),
            "uri",
            f"nothing accepts SSH connections on {host}:{port}: check the URI's host and port and that sshd "
            "runs there",
        ),
        (
            ("name or service not known", "nodename nor servname", "gaierror", "temporary failure in name"),
            "uri",
            f"the host name '{host}' does not resolve on the server: check the URI's host",
        ),
        (
            ("sftpconnectionerror", "timed out", "timeout", "no route to host"),
            "uri",
            f"{host}:{port} does not answer: check the URI's host/port and the firewall",
        ),
    ]
    for needles, cause, hint in rules:
        if any(n in low for n in needles):
            return cause, hint
    return "unknown", "see the error and the server's journal (journalctl -u mlflow)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:5000")
    parser.add_argument("--artifact-uri", required=True, help="the sftp:// URI the server uses")
    parser.add_argument("--mode", choices=["proxied", "direct"], default="proxied")
    args = parser.parse_args(argv)
    CREDENTIALS.update(read_credentials(sys.stdin))

    parsed = urllib.parse.urlparse(args.artifact_uri)
    uri_parts = {
        "host": parsed.hostname,
        "port": parsed.port or 22,
        "user": parsed.username,
        "path": parsed.path,
    }
    name = f"{socket.gethostname()}-{uuid.uuid4().hex[:12]}"
    payload = f"mlflow round trip {name}\n".encode()
    result: dict = {"ok": True, "mode": args.mode, "artifact_uri": args.artifact_uri, "artifact": name}

    try:
        if args.mode == "proxied":
            _proxied_round_trip(args.url, payload, name)
        else:
            _direct_round_trip(args.artifact_uri, payload, name)
        return _emit(result, 0)
    except RoundTripError as err:
        result.update(ok=False, step=err.step, error=str(err))
        if err.status in (401, 403):
            result.update(
                cause="credentials",
                hint="the server refused the admin credentials: check mlflow_auth_admin_password "
                "(or the generated credentials/<host>/admin_password)",
            )
            return _emit(result, 1)

    # Find the cause: exercise the store directly, as the service account, outside the sandbox.
    direct_error = None
    if args.mode == "proxied":
        try:
            _direct_round_trip(args.artifact_uri, payload, name + "-direct")
        except RoundTripError as err:
            direct_error = f"{err.step}: {err}"
        except Exception:  # noqa: BLE001
            direct_error = traceback.format_exc(limit=3)
        result["direct_check"] = direct_error or "ok"
    text = f"{result.get('error', '')} {direct_error or ''}"
    cause, hint = classify(text, uri_parts)
    if cause == "unknown" and args.mode == "proxied" and direct_error is None:
        cause = "server"
        hint = (
            "the SFTP store works from this host as the service account but not through the server: "
            "check the server's journal (journalctl -u mlflow) and its sandbox (the unit must see "
            "~/.ssh read-only through BindReadOnlyPaths)"
        )
    result.update(cause=cause, hint=hint)
    return _emit(result, 1)


def _emit(result: dict, code: int) -> int:
    print(json.dumps(result))
    return code


if __name__ == "__main__":
    sys.exit(main())
