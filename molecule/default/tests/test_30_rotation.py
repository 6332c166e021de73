"""Key rotation on the running stack: no client run fails, every old artifact stays readable, and
neither the rotation nor a new address of the server (a VPN coming up) restarts MLflow."""

import json
import subprocess

from conftest import run_playbook
from stack import CLIENT, PROJECT_DIR, SCENARIO_DIR, SERVER, as_trainer, copy_to, read_back, train

KEY = "/home/mlops/.ssh/id_mlflow_sftp.pub"
# A second network for the server during the rotation run: one more address, as a VPN gives.
CHURN_NET = "mlops-churn"


def main_pid(server) -> str:
    return server.check_output("systemctl show -p MainPID --value mlflow.service")


def podman(*args: str, check: bool = True) -> None:
    subprocess.run(["podman", *args], check=check, capture_output=True, text=True)


def test_rotation_under_load(podman_host):
    server, client = podman_host(SERVER), podman_host(CLIENT)
    before = train(client, "before-rotation")
    old_key = server.file(KEY).content_string

    loop = copy_to(CLIENT, "client_loop.py")
    client.run_test(
        f"rm -f /tmp/loop.json && su - mlops -c 'nohup /opt/mlflow-client/bin/python {loop} 90 "
        "/tmp/loop.json "
        ">/tmp/loop.log 2>&1 &'"
    )
    pid = main_pid(server)
    podman("network", "create", CHURN_NET, check=False)
    podman("network", "connect", CHURN_NET, SERVER)
    try:
        assert len(server.check_output("hostname -I").split()) >= 2
        run_playbook(SCENARIO_DIR, str(PROJECT_DIR / "site.yml"), "-e", "mlops_ssh_rotate=true")
    finally:
        podman("network", "disconnect", CHURN_NET, SERVER, check=False)
        podman("network", "rm", CHURN_NET, check=False)
    assert server.file(KEY).content_string != old_key
    # The SFTP store reads the key per connection, and --allowed-hosts lists no interface address.
    assert main_pid(server) == pid, "the rotation or the new address restarted mlflow.service"

    # Wait for the load to finish, then look at what it saw.
    client.run_test("for i in $(seq 1 150); do [ -s /tmp/loop.json ] && exit 0; sleep 1; done; exit 1")
    seen = json.loads(client.file("/tmp/loop.json").content_string)
    assert seen["failures"] == [], seen["failures"][:3]
    assert len(seen["runs"]) > 5

    runs = read_back(client, before["run_ids"] + seen["runs"][:3] + seen["runs"][-3:])
    assert "model/MLmodel" in runs[before["run_ids"][0]]["files"]
    for run_id in seen["runs"][:3] + seen["runs"][-3:]:
        assert runs[run_id]["files"] == ["note.txt"]
    assert as_trainer(client, "true").rc == 0
