"""Direct artifact mode on the running stack: the client writes to SFTP itself.

Re-runs site.yml with mlflow_artifacts_mode=direct: the server switches to
--default-artifact-root sftp://... --no-serve-artifacts, the client gets its own key
(authorized SFTP-only on the artifact host), known_hosts, ssh config and the SFTP store
plugin. The same training script then logs straight to the artifact host, and the server
still lists and serves those artifacts through the REST API.
"""

from conftest import run_playbook
from stack import ARTIFACT, CLIENT, PROJECT_DIR, SCENARIO_DIR, SERVER, read_back, train

ARTIFACT_ROOT = "/home/mlops/mlflow/mlruns"
SFTP_ROOT = f"sftp://mlops@default-artifact:22{ARTIFACT_ROOT}"


def test_training_script_direct(podman_host):
    server, artifact, client = podman_host(SERVER), podman_host(ARTIFACT), podman_host(CLIENT)
    run_playbook(SCENARIO_DIR, str(PROJECT_DIR / "site.yml"), "-e", "mlflow_artifacts_mode=direct")

    unit = server.check_output("systemctl show -p ExecStart --value mlflow.service")
    assert "--no-serve-artifacts" in unit
    assert SFTP_ROOT in unit
    # The client's own key, authorized for SFTP only on the artifact host, in root's file that sshd
    # reads for mlops (sshd confines the account: artifact_store's Match block).
    key = client.file("/home/mlops/.ssh/id_mlflow_sftp")
    assert (key.user, key.mode) == ("mlops", 0o600)
    authorized = artifact.file("/etc/ssh/authorized_keys/mlops").content_string
    client_line = next(
        line for line in authorized.splitlines() if line.endswith("mlflow-sftp@default-client")
    )
    assert client_line.startswith('restrict,command="internal-sftp -u 0027" ')
    assert client.run("/opt/mlflow-client/bin/python -c 'import mlflow_sftp_store'").rc == 0

    made = train(client, "classification-direct")
    runs = read_back(client, made["run_ids"])
    manual = runs[made["run_ids"][0]]
    assert manual["artifact_uri"].startswith(f"{SFTP_ROOT}/"), manual["artifact_uri"]
    assert "model/MLmodel" in manual["files"]
    assert "sklearn" in manual["mlmodel"]
    listing = artifact.check_output(
        f"find {ARTIFACT_ROOT} -name MLmodel -path '*{manual['model_ids'][0]}*' -printf '%u:%g %m %p\\n'"
    )
    assert listing.startswith("mlops:mlops 640 "), listing
