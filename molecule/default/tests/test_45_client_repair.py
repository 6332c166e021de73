"""Damage what mlflow_client and mlflow_proxy manage (files, a package, the user's MLflow account,
the proxy's files); one site.yml run repairs it, the next changes nothing.

After test_40: the stack is in direct artifact mode, so both runs keep it. The next run is at -vvv
and test_60 searches its output for secrets (one run for both)."""

import re

from accounts import as_admin, can_log_in, user_password
from conftest import run_playbook
from stack import CLIENT, PROJECT_DIR, SCENARIO_DIR, SERVER, verbose_rerun

ENV = "/home/mlops/.mlflow/mlflow.env"
PROFILE = "/home/mlops/.profile"
MARKER = "MLflow tracking settings (managed by Ansible)"
CLIENT_PIP = "/opt/mlflow-client/bin/pip"
CLIENT_CA = "/etc/mlflow-client/tracking-ca.crt"
HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
PEM = "/etc/haproxy/tls/mlflow.pem"
# The settings file's content and mode, ~/.mlflow's mode, the login-shell block, an extra package.
DAMAGE = f"""set -e
echo 'export MLFLOW_TRACKING_URI=https://elsewhere' >> {ENV}
chmod 0644 {ENV}
chmod 0755 /home/mlops/.mlflow
sed -i '/BEGIN {MARKER}/,/END {MARKER}/d' {PROFILE}
{CLIENT_PIP} uninstall -q -y scikit-learn
rm {CLIENT_CA}
"""
# The proxy's configuration (a valid but different one), its certificate file (content and mode),
# and the service stopped and disabled.
PROXY_DAMAGE = f"""set -e
sed -i 's/maxconn 2000/maxconn 7/' {HAPROXY_CFG}
chmod 0644 {PEM}
echo '# edited by hand' >> {PEM}
systemctl disable --now haproxy 2>/dev/null
"""


def proxy_state(server) -> dict:
    def file(path: str) -> tuple:
        f = server.file(path)
        return (f.sha256sum, f.user, f.mode)

    haproxy = server.service("haproxy")
    return {
        "config": file(HAPROXY_CFG),
        "pem": file(PEM),
        "service": (haproxy.is_running, haproxy.is_enabled),
    }


def managed_state(client) -> dict:
    def file(path: str) -> tuple:
        f = client.file(path)
        return (f.sha256sum, f.user, f.mode)

    return {
        "env": file(ENV),
        "dir": client.file("/home/mlops/.mlflow").mode,
        "profile": file(PROFILE),
        "sklearn": client.run(f"{CLIENT_PIP} show -q scikit-learn").rc == 0,
        "ca": client.file(CLIENT_CA).exists,
    }


def changed(output: str) -> dict[str, int]:
    return {m[0]: int(m[1]) for m in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", output, re.M)}


def test_one_run_repairs_the_client_and_the_proxy_the_next_changes_nothing(podman_host):
    client, server = podman_host(CLIENT), podman_host(SERVER)
    before, proxy_before = managed_state(client), proxy_state(server)
    client.check_output(DAMAGE)
    server.check_output(PROXY_DAMAGE)
    # The user's MLflow account too: another password set on the server.
    assert (
        as_admin(server, "PATCH", "/update-password", {"username": "mlops", "password": "x" * 20})[0] == 200
    )
    # (The old password may still pass on the workers that cached it: MLflow remembers a
    # successful check for mlflow_auth_cache_ttl_seconds, 60 s, per worker.)
    assert can_log_in(server, "mlops", "x" * 20)
    damaged, proxy_damaged = managed_state(client), proxy_state(server)
    for what in before:
        assert damaged[what] != before[what], f"{what} was not damaged"
    for what in proxy_before:
        assert proxy_damaged[what] != proxy_before[what], f"proxy {what} was not damaged"

    repair = run_playbook(SCENARIO_DIR, str(PROJECT_DIR / "site.yml"), "-e", "mlflow_artifacts_mode=direct")
    assert changed(repair.stdout)[CLIENT] > 0
    assert changed(repair.stdout)[SERVER] > 0
    assert managed_state(client) == before
    assert proxy_state(server) == proxy_before
    # The run took longer than the auth cache's 60 s: these checks reach the database.
    assert can_log_in(server, "mlops", user_password("mlops"))
    assert not can_log_in(server, "mlops", "x" * 20)
    exported = client.check_output("su - mlops -c 'echo $MLFLOW_TRACKING_URI'")
    assert exported == "https://default-server"
    # The repaired proxy serves the client again (the run itself waited for /health through it).
    probe = (
        f"import ssl, urllib.request; print(urllib.request.urlopen('https://{SERVER}/health', timeout=10, "
        f"context=ssl.create_default_context(cafile='{CLIENT_CA}')).status)"
    )
    health = client.run("python3 -c %s", probe)
    assert health.stdout.strip() == "200", health.stderr

    again = verbose_rerun()
    assert all(n == 0 for n in changed(again.stdout).values()), again.stdout[-3000:]
