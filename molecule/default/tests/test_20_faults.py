"""Faults: the server process killed, the artifact host restarted (SSH sessions dropped).

No timing is asserted here (the test hosts share two CPUs with other scenarios): the waits
are generous and the measured times are printed. What is asserted is that recovery needs no
manual action and that the first upload after the artifact host is back succeeds.
"""

import subprocess
import time

from stack import ARTIFACT, CLIENT, SERVER, read_back, train, wait_until


def _healthy(server):
    """/health answers through the TLS proxy: MLflow is up AND HAProxy's check has seen it up."""
    probe = (
        "import ssl, urllib.request; urllib.request.urlopen('https://localhost/health', timeout=5, "
        "context=ssl.create_default_context(cafile='/etc/haproxy/tls/ca.crt'))"
    )
    return server.run(f'python3 -c "{probe}"').rc == 0


def test_kill_9_recovers(podman_host):
    server, client = podman_host(SERVER), podman_host(CLIENT)
    pid = server.check_output("systemctl show -p MainPID --value mlflow.service")
    assert pid != "0"
    started = time.monotonic()
    server.run_test(f"kill -9 {pid}")
    assert wait_until(
        lambda: server.check_output("systemctl show -p MainPID --value mlflow.service") not in (pid, "0"), 120
    )
    assert wait_until(lambda: _healthy(server), 300)
    print(f"healthy again {time.monotonic() - started:.1f} s after kill -9")
    made = train(client, "after-kill")
    assert "model/MLmodel" in read_back(client, made["run_ids"][:1])[made["run_ids"][0]]["files"]


def test_artifact_host_restart_recovers(podman_host):
    """All SSH sessions to the artifact host drop; the next upload and listing just work.

    The server holds pooled SFTP sessions from the first training run. Stock MLflow (pysftp)
    fails every upload on such dead sessions until it is restarted; the SFTP store plugin
    notices the dead session and reconnects, so the first run after sshd is back succeeds.
    """
    client, artifact = podman_host(CLIENT), podman_host(ARTIFACT)
    train(client, "before-restart")
    restarted = time.monotonic()
    subprocess.run(["podman", "restart", "-t", "2", ARTIFACT], check=True)
    assert wait_until(lambda: artifact.run("systemctl is-active ssh").stdout.strip() == "active", 300)
    print(f"artifact host's sshd back {time.monotonic() - restarted:.1f} s after the restart")
    made = train(client, "after-artifact-restart")  # the first attempt, no retry
    assert "model/MLmodel" in read_back(client, made["run_ids"][:1])[made["run_ids"][0]]["files"]
    print(
        f"upload and listing through the server worked {time.monotonic() - restarted:.1f} s after the restart"
    )
