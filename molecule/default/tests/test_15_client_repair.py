"""Damage what mlflow_client manages (files, a package, the user's MLflow account); one site.yml run
repairs it, the next changes nothing."""

import re

from accounts import as_admin, can_log_in, user_password
from conftest import run_playbook
from stack import CLIENT, PROJECT_DIR, SCENARIO_DIR, SERVER

ENV = "/home/mlops/.mlflow/mlflow.env"
PROFILE = "/home/mlops/.profile"
MARKER = "MLflow tracking settings (managed by Ansible)"
CLIENT_PIP = "/opt/mlflow-client/bin/pip"
# The settings file's content and mode, ~/.mlflow's mode, the login-shell block, an extra package.
DAMAGE = f"""set -e
echo 'export MLFLOW_TRACKING_URI=http://elsewhere:5000' >> {ENV}
chmod 0644 {ENV}
chmod 0755 /home/mlops/.mlflow
sed -i '/BEGIN {MARKER}/,/END {MARKER}/d' {PROFILE}
{CLIENT_PIP} uninstall -q -y scikit-learn
"""


def managed_state(client) -> dict:
    def file(path: str) -> tuple:
        f = client.file(path)
        return (f.sha256sum, f.user, f.mode)

    return {
        "env": file(ENV),
        "dir": client.file("/home/mlops/.mlflow").mode,
        "profile": file(PROFILE),
        "sklearn": client.run(f"{CLIENT_PIP} show -q scikit-learn").rc == 0,
    }


def changed(output: str) -> dict[str, int]:
    return {m[0]: int(m[1]) for m in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", output, re.M)}


def test_one_run_repairs_the_client_the_next_changes_nothing(podman_host):
    client, server = podman_host(CLIENT), podman_host(SERVER)
    before = managed_state(client)
    client.check_output(DAMAGE)
    # The user's MLflow account too: another password set on the server.
    assert (
        as_admin(server, "PATCH", "/update-password", {"username": "mlops", "password": "x" * 20})[0] == 200
    )
    assert not can_log_in(server, "mlops", user_password("mlops"))
    damaged = managed_state(client)
    for what in before:
        assert damaged[what] != before[what], f"{what} was not damaged"

    repair = run_playbook(SCENARIO_DIR, str(PROJECT_DIR / "site.yml"))
    assert changed(repair.stdout)[CLIENT] > 0
    assert managed_state(client) == before
    assert can_log_in(server, "mlops", user_password("mlops"))
    exported = client.check_output("su - mlops -c 'echo $MLFLOW_TRACKING_URI'")
    assert exported == "http://default-server:5000"

    again = run_playbook(SCENARIO_DIR, str(PROJECT_DIR / "site.yml"))
    assert all(n == 0 for n in changed(again.stdout).values()), again.stdout[-3000:]
