"""Damage what mlops_account and mlops_ssh manage; one converge repairs all of it, the next changes nothing.

Runs after test_keys.py (file order), on hosts it left converged. keys-server loses: the acl package
(mlops_account), the mode of ~/.ssh and of the private key, root's copy of the key pair (content
replaced, public key deleted), the managed known_hosts block (edited) and ssh config block (deleted),
and, on keys-artifact, its line in root's keys file, whose owner and mode are changed too. No
rotation is due: the key stays the same.
"""

from __future__ import annotations

from conftest import run_playbook
from test_keys import KEY_NAME, KEYS_FILE, OPTIONS, SCENARIO_DIR, managed_lines, pub_line, recap, sftp_probe

MARKER = "ANSIBLE MANAGED BLOCK mlops_ssh"
MLOPS_KEY = f"/home/mlops/.ssh/{KEY_NAME}"
ROOT_KEY = f"/root/.ssh/{KEY_NAME}"
COMMENT = "mlflow-sftp@keys-server"

DAMAGE = f"""set -e
apt-get remove -y -q acl >/dev/null
chmod 0755 /home/mlops/.ssh
chmod 0644 {MLOPS_KEY}
echo not-a-key > {ROOT_KEY}
chmod 0644 {ROOT_KEY}
rm -f {ROOT_KEY}.pub
sed -i '/BEGIN {MARKER}/,/END {MARKER}/s/^keys-artifact /keys-elsewhere /' /home/mlops/.ssh/known_hosts
sed -i '/BEGIN {MARKER}/,/END {MARKER}/d' /root/.ssh/config
"""


def state(server, artifact) -> dict:
    """What the damage touches, as the roles leave it."""
    return {
        "acl": server.package("acl").is_installed,
        "ssh_dir": server.file("/home/mlops/.ssh").mode,
        "mlops_key": (server.file(MLOPS_KEY).sha256sum, server.file(MLOPS_KEY).mode),
        "root_key": (server.file(ROOT_KEY).sha256sum, server.file(ROOT_KEY).mode, server.file(ROOT_KEY).user),
        "root_pub": server.file(f"{ROOT_KEY}.pub").exists and pub_line(server, f"{ROOT_KEY}.pub"),
        "known_hosts": server.file("/home/mlops/.ssh/known_hosts").content_string,
        "root_config": server.file("/root/.ssh/config").content_string,
        "authorized": managed_lines(artifact, COMMENT),
        "keys_file": artifact.check_output(f"stat -c '%U %G %a' {KEYS_FILE}"),
    }


def test_one_converge_repairs_everything_the_next_changes_nothing(podman_host):
    server, artifact = podman_host("keys-server"), podman_host("keys-artifact")
    before = state(server, artifact)
    assert before["acl"] and before["root_key"][0] == before["mlops_key"][0]
    pub = pub_line(server, f"{MLOPS_KEY}.pub")

    server.check_output(DAMAGE)
    artifact.check_output(
        f"sed -i '/ {COMMENT}$/d' {KEYS_FILE} && chown mlops {KEYS_FILE} && chmod 0666 {KEYS_FILE}"
    )
    damaged = state(server, artifact)
    for what in before:
        assert damaged[what] != before[what], f"{what} was not damaged"

    repair = run_playbook(SCENARIO_DIR, "converge.yml")
    assert "Rotating the SFTP key" not in repair.stdout
    assert recap(repair.stdout)["keys-server"]["changed"] > 0
    assert state(server, artifact) == before
    assert managed_lines(artifact, COMMENT) == [f"{OPTIONS} {pub}"]
    for owner, key in (("mlops", MLOPS_KEY), ("root", ROOT_KEY)):
        out = sftp_probe(server, owner, "keys-artifact", 2222, key)
        assert out["sshclient"]["ok"] and out["bare"]["ok"], out

    again = run_playbook(SCENARIO_DIR, "converge.yml")
    counts = recap(again.stdout)
    assert all(c["changed"] == 0 for c in counts.values()), counts
