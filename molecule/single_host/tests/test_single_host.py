"""One host is server and artifact host: it SFTPs to itself, as the team's box does."""

import json
import os
import ssl
import subprocess
import urllib.request
from pathlib import Path

import pytest

HOST = "single-box"
HERE = Path(__file__).resolve().parent
ROOT = "/home/mlops/mlflow/mlruns"
CREDENTIALS = HERE.parents[2] / "credentials" / HOST / "admin_password"
CA = HERE.parents[2] / "credentials" / "ca" / "ca.crt"


def test_service_and_sftp_to_itself(podman_host):
    box = podman_host(HOST)
    assert box.service("mlflow.service").is_running
    assert box.service("ssh").is_running
    # The key is authorized for mlops on this same host, SFTP only, in root's file that sshd reads
    # for mlops (the artifact_store role's Match block confines the account).
    keys = box.file("/etc/ssh/authorized_keys/mlops")
    assert (keys.user, keys.group, keys.mode) == ("root", "root", 0o644)
    assert 'command="internal-sftp' in keys.content_string


def test_roundtrip_through_the_server(podman_host):
    box = podman_host(HOST)
    subprocess.run(["podman", "cp", str(HERE / "roundtrip.py"), f"{HOST}:/tmp/roundtrip.py"], check=True)
    subprocess.run(["podman", "cp", str(CA), f"{HOST}:/tmp/ca.crt"], check=True)
    password = CREDENTIALS.read_text().strip()
    # Through the box's TLS proxy, by its name, with the toolkit's CA.
    result = box.run(
        "MLFLOW_TRACKING_URI=https://single-box MLFLOW_TRACKING_SERVER_CERT_PATH=/tmp/ca.crt "
        "MLFLOW_TRACKING_USERNAME=admin "
        f"MLFLOW_TRACKING_PASSWORD='{password}' /opt/mlflow/bin/python /tmp/roundtrip.py single"
    )
    assert result.rc == 0, result.stderr[-3000:]
    made = json.loads(result.stdout.strip().splitlines()[-1])
    assert made["same"] is True
    stored = box.check_output(f"find {ROOT} -name blob.bin -path '*{made['run_id']}*' -printf '%u %m'")
    assert stored == "mlops 640"


def test_tls_from_this_machine_through_the_published_port():
    """The published proxy answers this machine over TLS with the toolkit's CA, by 127.0.0.1."""
    context = ssl.create_default_context(cafile=str(CA))
    with urllib.request.urlopen("https://127.0.0.1:2443/health", timeout=30, context=context) as answer:
        assert answer.status == 200


# The key the server holds, used by its own mlops (the toolkit's ~/.ssh/config entry for the box:
# key, port, strict host key checking), tries to reach what else lives on the box.
AS_MLOPS = "runuser -u mlops -- "
SFTP = f"{AS_MLOPS}sftp -b - -o BatchMode=yes {HOST}"
SECRETS = [
    "/var/lib/mlflow/mlflow.db",
    "/var/lib/mlflow/basic_auth.db",
    "/var/lib/mlflow/basic_auth.ini",
    "/home/mlops/.ssh/id_mlflow_sftp",
    "/etc/shadow",
]


def test_sftp_key_cannot_read_the_tracking_database_or_secrets(podman_host):
    box = podman_host(HOST)
    assert box.file("/var/lib/mlflow/mlflow.db").exists
    for path in SECRETS:
        result = box.run(f"echo 'get {path} /tmp/stolen' | {SFTP}")
        assert result.rc != 0, f"{path}: {result.stdout}"
        assert not box.file("/tmp/stolen").exists
    # What the key sees: the way down to the artifact root, nothing else.
    listing = box.run(f"printf 'ls -1a /\\nls -1a /home/mlops\\n' | {SFTP}")
    assert listing.rc == 0, listing.stderr
    names = [line.strip() for line in listing.stdout.splitlines() if not line.startswith("sftp>")]
    assert names == ["/.", "/..", "/home", "/home/mlops/.", "/home/mlops/..", "/home/mlops/mlflow"], names


def test_sftp_key_cannot_get_a_shell_or_forward(podman_host):
    box = podman_host(HOST)
    box.check_output("install -o mlops -g mlops -m 0644 /home/mlops/.ssh/id_mlflow_sftp.pub /tmp/open_keys")
    for target in (
        "/home/mlops/.ssh/authorized_keys",
        "/home/mlops/.ssh/authorized_keys2",
        "/var/lib/mlflow/x",
    ):
        result = box.run(f"echo 'put /tmp/open_keys {target}' | {SFTP}")
        assert result.rc != 0, f"{target}: {result.stdout}"
    for args in (
        "'id; echo escaped'",
        "-W 127.0.0.1:5000",
        "-N -o ExitOnForwardFailure=yes -R 127.0.0.1:2398:127.0.0.1:22",
    ):
        result = box.run(f"{AS_MLOPS}timeout 20 ssh -o BatchMode=yes {args} {HOST} </dev/null")
        assert result.rc != 0, args
        assert "uid=" not in result.stdout and "escaped" not in result.stdout, args


@pytest.mark.skipif(
    os.environ.get("MOLECULE_DISTRO", "debian12") != "debian13",
    reason="Debian 13 only: its /tmp is a RAM tmpfs, where a spooled upload would land",
)
def test_a_1_gib_artifact_streams_through_the_proxy_to_the_artifact_tree(podman_host):
    """1 GiB through the TLS proxy and the proxied server, streamed to SFTP (the plugin's
    StreamUploadMixin: nothing spooled to the service's private /tmp), stored byte-identical."""
    box = podman_host(HOST)
    subprocess.run(["podman", "cp", str(HERE / "big_upload.py"), f"{HOST}:/tmp/big_upload.py"], check=True)
    subprocess.run(["podman", "cp", str(CA), f"{HOST}:/tmp/ca.crt"], check=True)
    password = CREDENTIALS.read_text().strip()
    box.check_output("head -c 1073741824 /dev/urandom > /var/tmp/big.bin")
    try:
        source = box.check_output("sha256sum /var/tmp/big.bin").split()[0]
        result = box.run(
            "MLFLOW_TRACKING_URI=https://single-box MLFLOW_TRACKING_SERVER_CERT_PATH=/tmp/ca.crt "
            "MLFLOW_TRACKING_USERNAME=admin MLFLOW_HTTP_REQUEST_TIMEOUT=900 "
            f"MLFLOW_TRACKING_PASSWORD='{password}' /opt/mlflow/bin/python /tmp/big_upload.py big "
            "/var/tmp/big.bin"
        )
        assert result.rc == 0, result.stderr[-3000:]
        run_id = json.loads(result.stdout.strip().splitlines()[-1])["run_id"]
        stored = box.check_output(f"find {ROOT} -path '*{run_id}/artifacts/big/big.bin'")
        assert stored, "the artifact is not in the tree"
        assert box.check_output(f"stat -c %s {stored}") == "1073741824"
        assert box.check_output(f"sha256sum {stored}").split()[0] == source
        box.run_test(f"rm -f {stored}")
    finally:
        box.run_test("rm -f /var/tmp/big.bin")
