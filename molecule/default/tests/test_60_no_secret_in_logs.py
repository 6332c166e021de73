"""No secret the toolkit holds shows in any host's journal and logs, after every run of this scenario
(converge, idempotence, and the tests' runs: repairs, a rotation, user changes, direct mode).

Secrets: the generated admin password, Flask secret key and training users' passwords
(credentials/), and the SFTP private keys (a line of each key's body). Before this, ansible-core
put `environment:` values in front of the remote command, so the admin password showed in ps, in
sudo's log and twice in one -vvv run. The -vvv output itself is checked by test_15 (its repair
run, which rewrites the secret-holding files and a user's password, is run with -vvv).
"""

import pytest
from accounts import put_secret, secrets
from stack import ARTIFACT, CLIENT, SERVER

HOSTS = (SERVER, ARTIFACT, CLIENT)


@pytest.mark.parametrize("name", HOSTS)
def test_no_secret_in_host_logs(podman_host, name):
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
