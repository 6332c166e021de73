"""A rotation killed in each state it passes through: the host it leaves still logs in with every owner's
key, and the next plain run finishes the rotation (one key, in both homes, the only one of this
host authorized, the staged key gone).

The kill is real: a test-only callback (callback_plugins/kill_after.py) sends SIGKILL to
ansible-playbook right after the named task finished on keys-server. Runs after test_keys.py
and test_repair.py (file order), on keys-server -> keys-artifact only (rotate.yml).
"""

from __future__ import annotations

import pytest
from conftest import run_playbook
from test_keys import KEY_NAME, OWNERS, PAIRS, SCENARIO_DIR, blob, managed_lines, pub_line, sftp_probe

HOST, ARTIFACT, ADDRESS, PORT = PAIRS[0]
COMMENT = f"mlflow-sftp@{HOST}"
KILL = {
    "ANSIBLE_CALLBACK_PLUGINS": str(SCENARIO_DIR / "callback_plugins"),
    "ANSIBLE_CALLBACKS_ENABLED": "kill_after",
}
# (task, loop items to let finish first: 0 = the whole task), in the order a rotation runs them:
# one kill in each state a rotation passes through. Not killed after (the same state as a step
# here): the first owner's derived .pub (stale .pub files, as after "every owner"), and the SFTP
# verification (only the cleanup left, as after "remove the staging copy").
STEPS = [
    ("Keypair | generate the new key pair on the host", 0),
    ("Keypair | authorize the key, SFTP only, on the artifact hosts", 0),
    # mlops holds the new private key beside the old .pub; root still holds the old key.
    ("Keypair | install the private key for every owner", 1),
    ("Keypair | install the private key for every owner", 0),
    ("Keypair | remove the staging copy (both files)", 0),
]


def held(host) -> dict[str, str]:
    """The public key (blob) of each owner's private key, derived from the private key."""
    return {
        owner: blob(host.check_output(f"ssh-keygen -y -f {home}/.ssh/{KEY_NAME}"))
        for owner, home in OWNERS.items()
    }


def assert_every_owner_logs_in(host, when: str) -> None:
    for owner, home in OWNERS.items():
        probe = sftp_probe(host, owner, ADDRESS, PORT, f"{home}/.ssh/{KEY_NAME}")
        assert probe["sshclient"]["ok"], f"{when}: {owner} is locked out: {probe}"


@pytest.mark.parametrize(
    ("task", "items"), STEPS, ids=[f"{t.split('| ')[1][:40]}{'-1' if n else ''}" for t, n in STEPS]
)
def test_a_rotation_killed_after_a_step_is_finished_by_the_next_plain_run(podman_host, task, items):
    host, artifact = podman_host(HOST), podman_host(ARTIFACT)
    before = held(host)
    assert before["mlops"] == before["root"]

    killed = run_playbook(
        SCENARIO_DIR,
        "rotate.yml",
        "-e",
        "mlops_ssh_rotate=true",
        check=False,
        env={**KILL, "KILL_AFTER_TASK": task, "KILL_AFTER_ITEMS": str(items)},
    )
    assert killed.returncode == -9, f"not killed after {task!r}:\n{killed.stdout[-3000:]}"
    assert_every_owner_logs_in(host, f"killed after {task!r}")

    finished = run_playbook(SCENARIO_DIR, "rotate.yml")
    after = held(host)
    assert after["mlops"] == after["root"], "the owners hold different keys"
    assert after["mlops"] != before["mlops"], "the plain run did not finish the rotation"
    for owner, home in OWNERS.items():
        assert blob(pub_line(host, f"{home}/.ssh/{KEY_NAME}.pub")) == after[owner], f"{owner}'s .pub is stale"
    # (An authorized line is OPTIONS TYPE BLOB COMMENT, and the options hold spaces.)
    assert [line.split()[-2] for line in managed_lines(artifact, COMMENT)] == [after["mlops"]]
    assert not host.file(f"/home/mlops/.ssh/{KEY_NAME}.new").exists
    assert_every_owner_logs_in(host, "after the plain run")
    # Until the staged key is installed for the first owner, the next run finishes with it.
    if STEPS.index((task, items)) < 2:
        assert "finishing the rotation an earlier run began" in finished.stdout
