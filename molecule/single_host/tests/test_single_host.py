"""One host is server and artifact host: it SFTPs to itself, as the team's box does."""

import json
import ssl
import subprocess
import urllib.request
from pathlib import Path

HOST = "single-box"
HERE = Path(__file__).resolve().parent
ROOT = "/home/mlops/mlflow/mlruns"
CREDENTIALS = HERE.parents[2] / "credentials" / HOST / "admin_password"
CA = HERE.parents[2] / "credentials" / "ca" / "ca.crt"


def test_service_and_sftp_to_itself(podman_host):
    box = podman_host(HOST)
    assert box.service("mlflow.service").is_running
    assert box.service("ssh").is_running
    # The key is authorized for mlops on this same host, SFTP only.
    keys = box.file("/home/mlops/.ssh/authorized_keys").content_string
    assert 'command="internal-sftp' in keys


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
