"""site.yml on three hosts: a training client logs through the server to the SFTP host."""

from stack import ARTIFACT, CLIENT, PROJECT_DIR, SERVER, read_back, train

ARTIFACT_ROOT = "/home/mlops/mlflow/mlruns"


def test_server_runs_as_mlops(podman_host):
    server = podman_host(SERVER)
    service = server.service("mlflow.service")
    assert service.is_running
    assert service.is_enabled
    user = server.check_output("systemctl show -p User --value mlflow.service")
    assert user == "mlops"
    # MLflow on loopback only; HAProxy publishes it over TLS on 443.
    assert server.socket("tcp://127.0.0.1:5000").is_listening
    assert not server.socket("tcp://0.0.0.0:5000").is_listening
    assert server.service("haproxy").is_running
    assert server.socket("tcp://0.0.0.0:443").is_listening


def test_artifact_host_serves_sftp(podman_host):
    artifact = podman_host(ARTIFACT)
    assert artifact.service("ssh").is_running
    root = artifact.file(ARTIFACT_ROOT)
    assert root.is_directory
    assert (root.user, root.group) == ("mlops", "mlops")


def test_client_environment(podman_host):
    client = podman_host(CLIENT)
    env = client.file("/home/mlops/.mlflow/mlflow.env")
    assert env.mode == 0o600
    assert env.user == "mlops"
    exported = client.check_output("su - mlops -c 'echo $MLFLOW_TRACKING_URI $MLFLOW_TRACKING_USERNAME'")
    assert exported == "https://default-server mlops"
    cert_path = client.check_output("su - mlops -c 'echo $MLFLOW_TRACKING_SERVER_CERT_PATH'")
    assert cert_path == "/etc/mlflow-client/tracking-ca.crt"
    ca = client.file(cert_path)
    assert (ca.user, ca.mode) == ("root", 0o644)
    assert ca.content_string == (PROJECT_DIR / "credentials" / "ca" / "ca.crt").read_text()


def test_training_script_proxied(podman_host):
    client, artifact = podman_host(CLIENT), podman_host(ARTIFACT)
    made = train(client, "classification-proxied")
    assert len(made["run_ids"]) == 2
    runs = read_back(client, made["run_ids"])
    manual = runs[made["run_ids"][0]]
    assert manual["artifact_uri"].startswith("mlflow-artifacts:/")
    assert "model/MLmodel" in manual["files"]
    assert "sklearn" in manual["mlmodel"]
    # The bytes live on the artifact host, under the root, owned by mlops.
    listing = artifact.check_output(
        f"find {ARTIFACT_ROOT} -name MLmodel -path '*{manual['model_ids'][0]}*' -printf '%u:%g %m %p\\n'"
    )
    assert listing.startswith("mlops:mlops 640 "), listing
