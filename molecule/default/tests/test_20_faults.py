"""Faults: the server process killed, the artifact host restarted (SSH sessions dropped)."""

import subprocess

from stack import CLIENT, SERVER, read_back, train, wait_until


def _healthy(server):
    probe = "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=5)"
    return server.run(f'python3 -c "{probe}"').rc == 0


def test_kill_9_recovers(podman_host):
    server, client = podman_host(SERVER), podman_host(CLIENT)
    pid = server.check_output("systemctl show -p MainPID --value mlflow.service")
    assert pid != "0"
    server.run_test(f"kill -9 {pid}")
    assert wait_until(lambda: server.check_output("systemctl show -p MainPID --value mlflow.service") not in (pid, "0"), 30)
    assert wait_until(lambda: _healthy(server), 60)
    made = train(client, "after-kill")
    assert "model/MLmodel" in read_back(client, made["run_ids"][:1])[made["run_ids"][0]]["files"]


def test_artifact_host_restart_recovers(podman_host):
    """All SSH sessions to the artifact host drop; uploads and listings work again within 60 s."""
    client = podman_host(CLIENT)
    train(client, "before-restart")  # the server now holds pooled SFTP sessions
    subprocess.run(["podman", "restart", "-t", "2", "default-artifact"], check=True)

    def upload_and_list():
        try:
            made = train(client, "after-artifact-restart")
            return "model/MLmodel" in read_back(client, made["run_ids"][:1])[made["run_ids"][0]]["files"]
        except AssertionError:
            return False

    assert wait_until(upload_and_list, 60, interval=3)
