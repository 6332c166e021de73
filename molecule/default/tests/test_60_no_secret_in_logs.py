"""No secret the toolkit holds shows in a -vvv converge's output or in any host's journal and logs.

Secrets: the generated admin password, Flask secret key and training users' passwords
(credentials/), and the SFTP private keys (a line of each key's body). Before this, ansible-core
put `environment:` values in front of the remote command, so the admin password showed in ps, in
sudo's log and twice in one -vvv run.
"""

import pytest
from accounts import put_secret
from stack import ARTIFACT, CLIENT, PROJECT_DIR, SERVER, VERBOSE_RUNS, verbose_rerun

HOSTS = (SERVER, ARTIFACT, CLIENT)
KEYS = ("/home/mlops/.ssh/id_mlflow_sftp", "/root/.ssh/id_mlflow_sftp")


def secrets(podman_host) -> dict[str, str]:
    found = {
        str(path.relative_to(PROJECT_DIR)): path.read_text().strip()
        for path in (PROJECT_DIR / "credentials" / SERVER).rglob("*")
        if path.is_file()
    }
    for name in HOSTS:
        host = podman_host(name)
        for key in KEYS:
            if host.file(key).exists:
                # The middle of the key's body: long enough to be unique, on one line of the file.
                lines = host.check_output(f"cat {key}").splitlines()
                found[f"{name}:{key}"] = lines[len(lines) // 2]
    assert len(found) >= 4, found.keys()
    return found


@pytest.fixture(scope="module")
def verbose_run():
    # test_45's last run (a -vvv re-run in direct artifact mode), or one of its own when run alone.
    return VERBOSE_RUNS[-1] if VERBOSE_RUNS else verbose_rerun()


def test_no_secret_in_verbose_output(podman_host, verbose_run):
    output = verbose_run.stdout + verbose_run.stderr
    assert f"<{SERVER}>" in output  # it really was -vvv (connection lines name the host)
    leaked = [name for name, value in secrets(podman_host).items() if value in output]
    assert leaked == []


@pytest.mark.parametrize("name", HOSTS)
def test_no_secret_in_host_logs(podman_host, verbose_run, name):
    host = podman_host(name)
    values = secrets(podman_host)
    put_secret(host, "/root/.needles", "\n".join(values.values()))
    try:
        journal = host.run("journalctl --no-pager -o cat | grep -cF -f /root/.needles")
        logs = host.run("grep -rlsF -f /root/.needles /var/log")
    finally:
        host.run_test("rm -f /root/.needles")
    assert journal.stdout.strip() == "0", "a secret is in the journal"
    assert logs.stdout.strip() == "", logs.stdout
