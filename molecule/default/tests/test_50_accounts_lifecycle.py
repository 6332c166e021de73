"""Adding and removing a training user, as the mlflow_client README says: one clients.yml run each."""

import json

from accounts import CREDENTIALS, as_admin, can_log_in, login_shell, user_password
from conftest import run_playbook
from stack import CLIENT, PROJECT_DIR, SCENARIO_DIR, SERVER

CLIENTS = str(PROJECT_DIR / "playbooks" / "clients.yml")


def test_add_then_remove_a_user(podman_host):
    client, server = podman_host(CLIENT), podman_host(SERVER)
    client.run_test("id alice || useradd -m -s /bin/bash alice")
    try:
        run_playbook(SCENARIO_DIR, CLIENTS, "-e", json.dumps({"mlflow_client_users": ["mlops", "alice"]}))
        assert login_shell(client, "echo $MLFLOW_TRACKING_USERNAME", user="alice") == "alice"
        assert can_log_in(server, "alice", user_password("alice"))
        assert user_password("alice") != user_password("mlops")

        run_playbook(
            SCENARIO_DIR,
            CLIENTS,
            "-e",
            json.dumps({"mlflow_client_users": ["mlops"], "mlflow_client_removed_users": ["alice"]}),
        )
        assert as_admin(server, "GET", "/get?username=alice")[0] == 404
        assert not client.file("/home/alice/.mlflow/mlflow.env").exists
        # The others keep working.
        assert can_log_in(server, "mlops", user_password("mlops"))
    finally:
        client.run("userdel -r alice")
        (CREDENTIALS / "users" / "alice").unlink(missing_ok=True)
