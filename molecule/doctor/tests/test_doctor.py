"""The doctor on a hand-made tracking server (prepare.yml, the user's notes step by step).

It must name every trap the host has, change nothing (also under --check), fail only when
asked to, and turn a finding to ok once the trap is fixed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import DOCTOR_ARTIFACT_TASK, DOCTOR_SERVER_TASK, doctor_results, findings_matching, run_playbook

SCENARIO = Path(__file__).resolve().parent.parent
HOST = "doctor-hand"
HAND_URI = "sftp:///mlops@doctor-hand:/home/mlops/mlflow/mlruns"
GOOD_URI = "sftp://mlops@doctor-hand:22/home/mlops/mlflow/mlruns"
# Everything the doctor could be tempted to write to: keys, known_hosts, ssh config, the
# database, the artifact tree.
WATCHED = "/root/.ssh /home/mlops/.ssh /home/mlops/mlflow"


def snapshot(host) -> str:
    return host.check_output(f"find {WATCHED} -printf '%p %u:%g %m %s %T@\\n' | sort")


def doctor_json(*extra: str) -> dict[str, list[dict]]:
    """Run the doctor with the JSON callback; findings of both module tasks on HOST."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANSIBLE_STDOUT_CALLBACK", "ansible.posix.json")
        result = run_playbook(SCENARIO, "converge.yml", *extra)
    results, stats = doctor_results(result, HOST)
    found = {}
    for name, res in results:
        assert res.get("changed") is False, res
        found[name] = res["findings"]
    assert set(found) == {DOCTOR_SERVER_TASK, DOCTOR_ARTIFACT_TASK}, found.keys()
    found["stats"] = stats
    return found


@pytest.fixture(scope="module")
def first_run(podman_host):
    host = podman_host(HOST)
    before = snapshot(host)
    findings = doctor_json()
    after = snapshot(host)
    return {"before": before, "after": after, **findings}


# (level, check, regex over "message -> fix") the server part must report on this host.
SERVER_EXPECTED = [
    ("error", "process_user", r"MLflow runs as root"),
    ("error", "artifact_uri", r"three slashes .*" + re.escape(GOOD_URI)),
    ("error", "artifact_uri", r"empty port after 'doctor-hand:'"),
    ("warn", "service", r"there is no mlflow.service.*started by hand"),
    ("warn", "exposure", r"--host 0\.0\.0\.0 without --app-name basic-auth"),
    ("warn", "sftp_store", r"stock pysftp store.*paramiko 3\."),
    ("error", "known_hosts[root]", r"/root/.ssh/known_hosts has no host key for 'doctor-hand'"),
    ("error", "known_hosts[mlops]", r"/home/mlops/.ssh/known_hosts has no host key for 'doctor-hand'"),
    ("error", "sftp_login[root]", r"host key not in known_hosts"),
    ("error", "sftp_login[mlops]", r"host key not in known_hosts"),
    ("error", "database_uri", r"relative to the working directory \(/\).*four slashes"),
    ("warn", "database", r"/home/mlops/mlflow/mlflow.db .*owned by root"),
    ("warn", "journal_mode", r"not WAL"),
    ("warn", "backup", r"no backup of /home/mlops/mlflow/mlflow.db"),
    ("ok", "process", r"`mlflow server` runs as pid \d+"),
    ("ok", "port", r"TCP port 5000 listens on 0\.0\.0\.0"),
    ("ok", "health", r"/health -> 200"),
    ("ok", "schema", r"is current for MLflow 3\.17\.2"),
    ("ok", "keys[root]", r"~/.ssh/id_rsa \(rsa 3072\)"),
    ("ok", "keys[mlops]", r"~/.ssh/id_rsa \(rsa 3072\)"),
    ("ok", "key_in_use[root]", r"pysftp store logs in to mlops@doctor-hand:22 with ~/.ssh/id_rsa"),
]

ARTIFACT_EXPECTED = [
    ("warn", "account_locked", r"mlops's password field starts with '!'.*usermod -p '\*' mlops"),
    ("warn", "authorized_keys", r"2 of 2 key\(s\) for mlops allow a full shell"),
    (
        "warn",
        "confinement",
        r"sshd does not confine mlops \(no ForceCommand internal-sftp; no ChrootDirectory; "
        r"keys read from /home/mlops/.ssh/authorized_keys, in mlops's home.*get a shell",
    ),
    ("error", "artifact_owner", r"4 of 10 entries are not owned by mlops \(root: 4\)"),
    ("error", "artifact_access", r"cannot read 2 file\(s\).*cannot write into 2"),
    ("warn", "artifact_modes", r"7 of 7 directories are not 2750.*3 of 3 files are not 0640"),
    ("ok", "server_key_authorized", r"root's key on doctor-hand \(id_rsa, rsa\) is authorized"),
    ("ok", "server_key_authorized", r"mlops's key on doctor-hand \(id_rsa, rsa\) is authorized"),
    ("ok", "sshd_config", r"Subsystem sftp .*UsePAM yes"),
    ("ok", "artifact_path", r"mlops can reach /home/mlops/mlflow/mlruns"),
]


@pytest.mark.parametrize(("level", "check", "pattern"), SERVER_EXPECTED, ids=lambda v: str(v)[:40])
def test_server_finding(first_run, level, check, pattern):
    findings = first_run[DOCTOR_SERVER_TASK]
    assert findings_matching(findings, level, check, pattern), "\n".join(
        f"{f['level']} {f['check']}: {f['message']}" for f in findings
    )


@pytest.mark.parametrize(("level", "check", "pattern"), ARTIFACT_EXPECTED, ids=lambda v: str(v)[:40])
def test_artifact_finding(first_run, level, check, pattern):
    findings = first_run[DOCTOR_ARTIFACT_TASK]
    assert findings_matching(findings, level, check, pattern), "\n".join(
        f"{f['level']} {f['check']}: {f['message']}" for f in findings
    )


def test_every_warning_and_error_has_a_fix(first_run):
    for finding in first_run[DOCTOR_SERVER_TASK] + first_run[DOCTOR_ARTIFACT_TASK]:
        assert finding["level"] in ("ok", "warn", "error")
        if finding["level"] != "ok":
            assert finding["fix"], finding


def test_changes_nothing(first_run, podman_host):
    assert first_run["stats"]["changed"] == 0
    assert first_run["stats"]["failures"] == 0
    assert first_run["before"] == first_run["after"]
    host = podman_host(HOST)
    # The SFTP login ran with StrictHostKeyChecking=yes and UpdateHostKeys=no: no known_hosts.
    assert not host.file("/root/.ssh/known_hosts").exists
    assert not host.file("/home/mlops/.ssh/known_hosts").exists


def test_check_mode_prints_one_line_per_finding():
    result = run_playbook(SCENARIO, "converge.yml", "--check")
    out = result.stdout
    assert re.search(rf"{HOST}\s*: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0", out), out[-2000:]
    assert "[ERROR] process_user: MLflow runs as root" in out
    assert "[WARN] account_locked: mlops's password field starts with '!'" in out
    assert "[OK] health: GET http://127.0.0.1:5000/health -> 200" in out
    assert f"-> use --default-artifact-root {GOOD_URI}" in out
    assert re.search(rf"doctor {HOST} \(tracking server\): \d+ error, \d+ warn, \d+ ok", out)
    assert re.search(rf"doctor {HOST} \(artifact host /home/mlops/mlflow/mlruns\): \d+ error", out)


def test_fail_on_error_fails_the_play():
    result = run_playbook(SCENARIO, "converge.yml", "-e", "doctor_fail_on_error=true", check=False)
    assert result.returncode != 0
    # Ansible prints the failure on stderr when not on a terminal.
    assert re.search(
        r"doctor found \d+ error\(s\) on doctor-hand: .*process_user", result.stdout + result.stderr
    )
    # The findings were printed before the verdict.
    assert "[ERROR] known_hosts[root]" in result.stdout


def test_fixing_known_hosts_turns_the_findings_ok(podman_host, first_run):
    """The known_hosts and SFTP login checks follow the host: add root's entry, they pass."""
    host = podman_host(HOST)
    host.run_test("ssh-keyscan -t ed25519 doctor-hand > /root/.ssh/known_hosts 2>/dev/null")
    try:
        findings = doctor_json()[DOCTOR_SERVER_TASK]
    finally:
        host.run_test("rm -f /root/.ssh/known_hosts")
    assert findings_matching(
        findings, "ok", "known_hosts[root]", r"host key of doctor-hand listed as 'doctor-hand'"
    )
    assert findings_matching(
        findings, "ok", "sftp_login[root]", r"root logs in to mlops@doctor-hand:22 over SFTP"
    )
    # mlops still has no entry: still reported.
    assert findings_matching(findings, "error", "known_hosts[mlops]", r"no host key")
