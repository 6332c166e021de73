"""Helpers shared by this scenario's playbook-running tests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SCENARIO_DIR = Path(__file__).resolve().parent.parent
DEFAULT_HOST = "artifact-store-default"
DEFAULT_ROOT = "/home/mlops/mlflow/mlruns"
# The artifact account's keys: root's file named by the role's sshd drop-in (AuthorizedKeysFile).
KEYS_FILE = "/etc/ssh/authorized_keys/mlops"
CHROOT = "/srv/mlflow-sftp"
HOSTS = {
    # name: (artifact root, group, ports sshd serves)
    "artifact-store-default": ("/home/mlops/mlflow/mlruns", "mlops", [22]),
    "artifact-store-custom": ("/srv/mlflow/artifacts", "mlflow-readers", [22, 2222]),
}
KEY = "/root/.ssh/artifact_store_test_key"
KNOWN_HOSTS = "/root/.ssh/artifact_store_test_known_hosts"
PAYLOAD = "/root/artifact_store_payload.bin"
SSH_OPTS = (
    f"-i {KEY} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes "
    f"-o UserKnownHostsFile={KNOWN_HOSTS} -o ConnectTimeout=10"
)
REPORT = re.compile(r"(\d+) dirs, (\d+) files checked; fixed (\d+) dirs, (\d+) files")


def recap(output: str, host: str) -> dict[str, int]:
    """The PLAY RECAP counters of HOST (the last play that mentions it)."""
    lines = [line for line in output.splitlines() if re.match(rf"\s*{re.escape(host)}\s+:\s+ok=", line)]
    assert lines, f"no recap for {host}:\n{output[-3000:]}"
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", lines[-1])}


def repair_report(output: str) -> tuple[int, int, int, int]:
    """(dirs, files, dirs fixed, files fixed) from the role's 'Tree | what the repair ...' task."""
    found = REPORT.findall(output)
    assert len(found) == 1, f"expected one repair report:\n{output[-3000:]}"
    dirs, files, dirs_fixed, files_fixed = (int(n) for n in found[0])
    return dirs, files, dirs_fixed, files_fixed


def snapshot(host) -> str:
    """What the role could touch on the host: owners, modes, sizes and mtimes, sshd's ports."""
    return host.check_output(
        "find /home/mlops /srv /etc/ssh /run/sshd -printf '%p %u %g %m %s %T@\\n' | sort; "
        "stat -c '%n %U %G %a %s %Y' /etc/passwd /etc/group /etc/shadow /etc/fstab /var/lib/dpkg/status; "
        "findmnt -rn -o TARGET,SOURCE | sort; "
        "ss -Hltn | sort"
    )


@pytest.fixture(scope="module")
def sftp_ready(podman_host):
    """Authorize a fresh key for mlops as the mlops_ssh role does, record each host's key for its ports.

    The line goes into root's keys file with the role's options (`restrict,command=...`); sshd's
    Match block confines the account whatever the line says.
    """
    for name, (_root, _group, ports) in HOSTS.items():
        host = podman_host(name)
        known = " ".join(f"[localhost]:{p}" if p != 22 else "localhost" for p in ports)
        host.check_output(
            f"""set -e
            install -d -m 0700 /root/.ssh
            rm -f {KEY} {KEY}.pub
            ssh-keygen -q -t ed25519 -N '' -C artifact-store-test -f {KEY}
            printf 'restrict,command="internal-sftp -u 0027" %s\\n' "$(cat {KEY}.pub)" > {KEYS_FILE}
            chown root:root {KEYS_FILE}
            chmod 0644 {KEYS_FILE}
            : > {KNOWN_HOSTS}
            for h in {known}; do
                printf '%s %s\\n' "$h" "$(cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub)" >> {KNOWN_HOSTS}
            done
            head -c 1048576 /dev/urandom > {PAYLOAD}
            chmod 0644 {PAYLOAD}"""
        )
    return True


def sftp(host, batch: str, port: int = 22):
    """Run an `sftp -b -` session as mlops with the test key; the batch aborts at its first failure."""
    return host.run(f"sftp -b - -P {port} {SSH_OPTS} mlops@localhost <<'EOF'\n{batch}\nEOF")
