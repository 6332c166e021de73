"""Taking over the hand-made server of the user's notes (prepare.yml) with site.yml (converge).

Before: the doctor named the traps; site.yml with the hand-started server still running and
mlflow_adopt_stop_process off failed in preflight, naming the PID, the command and the variable,
and changed nothing. After: every experiment, run, param, metric, registered model version and
artifact byte the hand-made server held is read back through the new service; the database is the
service account's, migrated and in WAL mode, backed up first, the original untouched; no
root-owned artifact is left; the doctor finds no error and changes nothing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import doctor_results, findings_matching, run_playbook

SCENARIO = Path(__file__).resolve().parent.parent
HOST = "adoption-box"
ROOT = "/home/mlops/mlflow/mlruns"
HAND_DB = "/home/mlops/mlflow/mlflow.db"
DB = "/var/lib/mlflow/mlflow.db"
CREDENTIALS = SCENARIO.parents[1] / "credentials" / HOST / "admin_password"


def ephemeral(name: str) -> dict:
    return json.loads((Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / name).read_text())


def recap(stdout: str) -> dict[str, int]:
    line = re.search(rf"^{re.escape(HOST)}\s+:\s+(.*)$", stdout, re.M)
    assert line, stdout[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line.group(1))}


# --- before the adoption (recorded by prepare.yml) --------------------------------------------


def test_doctor_named_the_traps_of_the_hand_made_host():
    before = ephemeral("doctor-before.json")
    assert before["server_changed"] is False and before["artifact_changed"] is False
    server, artifact = before["server"], before["artifact"]
    expected = [
        (server, "error", "process_user", r"MLflow runs as root"),
        (server, "warn", "service", r"started by hand"),
        (server, "warn", "sftp_store", r"stock pysftp store"),
        (server, "warn", "exposure", r"0\.0\.0\.0 without --app-name basic-auth"),
        (server, "error", "database_uri", r"relative"),
        (server, "warn", "journal_mode", r"not WAL"),
        (server, "warn", "database", r"owned by root"),
        (server, "error", "known_hosts[mlops]", r"no host key for 'adoption-box'"),
        (artifact, "warn", "account_locked", r"'!'"),
        (artifact, "error", "artifact_owner", r"root"),
        (artifact, "error", "artifact_access", r"cannot read"),
    ]
    missing = [e[1:] for e in expected if not findings_matching(*e)]
    shown = [f"{f['level']} {f['check']}: {f['message']}" for f in server + artifact if f["level"] != "ok"]
    assert not missing, f"missing {missing}; doctor said:\n" + "\n".join(shown)


def test_site_refused_while_the_hand_started_server_ran():
    refusal = ephemeral("refusal.json")
    out = refusal["stdout"] + refusal["stderr"]
    assert refusal["rc"] != 0, out[-3000:]
    message = re.search(r"A hand-started MLflow server runs on adoption-box: PID (\d+) as root.*", out)
    assert message, out[-4000:]
    text = message.group(0)
    assert "/root/venv/bin/mlflow server" in text
    assert "mlflow_adopt_stop_process: true" in out
    # Preflight: nothing changed, and the play stopped before any other tier.
    assert recap(refusal["stdout"])["changed"] == 0
    assert "Accounts | the mlops service account" not in out
    # The refused PID is the one the adoption stopped afterwards.
    marker = json.loads(podman_file("/var/lib/mlflow/adopted-from.json"))
    assert int(message.group(1)) in marker["stopped_pids"]


def podman_file(path: str) -> str:
    return subprocess.run(
        ["podman", "exec", HOST, "cat", path], check=True, capture_output=True, text=True
    ).stdout


# --- after the adoption ------------------------------------------------------------------------


def test_hand_started_server_is_gone_and_the_service_runs(podman_host):
    box = podman_host(HOST)
    assert box.service("mlflow.service").is_running
    assert box.service("mlflow.service").is_enabled
    cmdlines = box.check_output("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' || true")
    assert "/root/venv/bin/mlflow server" not in cmdlines


def test_database_adopted_migrated_and_owned_by_mlops(podman_host):
    box = podman_host(HOST)
    db = box.file(DB)
    assert db.user == "mlops" and db.group == "mlops" and db.mode == 0o640
    status = json.loads(
        box.check_output(
            f"runuser -u mlops -- /opt/mlflow/bin/python /opt/mlflow/libexec/mlflow_db.py status --db {DB}"
        )
    )
    assert status["due"] is False and status["revision"] == status["head"], status
    assert status["journal_mode"] == "wal"
    marker = json.loads(box.file("/var/lib/mlflow/adopted-from.json").content_string)
    assert marker["source"] == HAND_DB
    backup = box.file(marker["backup"])
    assert backup.exists and backup.user == "mlops" and backup.mode == 0o640
    assert re.search(r"/var/lib/mlflow/backups/mlflow-adopted-\d{8}T\d+Z\.db$", marker["backup"])
    # The old revision was migrated after its own pre-upgrade backup.
    assert box.check_output("ls /var/lib/mlflow/backups/ | grep -c '^mlflow-pre-upgrade-' || true") != "0"
    # The hand-made file is left as it was: the fallback.
    manifest = json.loads(box.file("/root/adoption-manifest.json").content_string)
    assert box.check_output(f"sha256sum {HAND_DB} | cut -d' ' -f1") == manifest["database_sha256"]


def test_every_run_metric_model_and_artifact_reads_back_through_the_service(podman_host):
    box = podman_host(HOST)
    subprocess.run(
        ["podman", "cp", str(SCENARIO / "files" / "compare.py"), f"{HOST}:/tmp/compare.py"], check=True
    )
    password = CREDENTIALS.read_text().strip()
    result = box.run(
        f"MLFLOW_TRACKING_USERNAME=admin MLFLOW_TRACKING_PASSWORD='{password}' "
        "python3 /tmp/compare.py /root/adoption-manifest.json"
    )
    assert result.rc == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["problems"] == [], json.dumps(report["problems"], indent=1)[:6000]
    counts = report["counts"]
    # prepare.yml logged 3 runs (+ Default experiment), a registered model, root-owned files.
    assert counts["runs"] == 3 and counts["experiments"] >= 3 and counts["model_versions"] == 1, counts
    assert counts["artifacts"] >= 10 and counts["metrics"] >= 17, counts


def test_old_experiments_keep_their_sftp_locations(podman_host):
    box = podman_host(HOST)
    manifest = json.loads(box.file("/root/adoption-manifest.json").content_string)
    locations = {e["artifact_location"] for e in manifest["experiments"]}
    assert all(loc.startswith("sftp://mlops@adoption-box:22/home/mlops/mlflow/mlruns") for loc in locations)


def test_no_artifact_left_to_root(podman_host):
    box = podman_host(HOST)
    assert box.check_output(f"find {ROOT} ! -user mlops -printf '%p %u\\n' | head -20") == ""
    assert box.check_output(f"find {ROOT} -type f ! -perm -0040 -printf '%p %m\\n' | head -20") == ""


def test_hand_made_keys_still_sftp_but_no_shell(podman_host):
    box = podman_host(HOST)
    # sshd reads mlops' keys from root's file only (the artifact_store role's Match block); the
    # adoption put the hand-made keys there, SFTP only. The hand-made file is left as it was.
    keys = box.file("/etc/ssh/authorized_keys/mlops")
    assert (keys.user, keys.group, keys.mode) == ("root", "root", 0o644)
    lines = [line for line in keys.content_string.splitlines() if line.strip() and not line.startswith("#")]
    assert lines and all(line.startswith("restrict,") for line in lines), lines
    hand_made = [
        line.split()[1]
        for line in box.file("/home/mlops/.ssh/authorized_keys").content_string.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(hand_made) == 2
    assert all(any(f" {blob} " in line + " " for line in lines) for blob in hand_made), lines
    # root's hand-made key (the notes' ssh-keygen) still reaches the artifact tree over SFTP ...
    # (-F /dev/null: not the toolkit's ssh config, whose IdentityFile is the toolkit's key.)
    opts = (
        "-F /dev/null -o IdentityFile=/root/.ssh/id_rsa -o IdentitiesOnly=yes -o BatchMode=yes "
        "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
    )
    login = f"ssh {opts}"
    listing = box.run(f"echo 'ls {ROOT}' | sftp -b - {opts} mlops@{HOST}")
    assert listing.rc == 0, listing.stderr
    # ... but no longer opens a shell, even after rewriting the hand-made file over SFTP (refused:
    # the session is chrooted to the artifact tree, and sshd does not read that file anyway).
    shell = box.run(f"{login} mlops@{HOST} id")
    assert "uid=" not in shell.stdout, shell.stdout
    box.check_output("cp /root/.ssh/id_rsa.pub /tmp/open_keys && chmod 0644 /tmp/open_keys")
    for target in ("/home/mlops/.ssh/authorized_keys", "/home/mlops/.ssh/authorized_keys2"):
        upload = box.run(f"echo 'put /tmp/open_keys {target}' | sftp -b - {opts} mlops@{HOST}")
        assert upload.rc != 0, upload.stdout
    shell = box.run(f"{login} mlops@{HOST} id")
    assert "uid=" not in shell.stdout, shell.stdout
    # Nor can the key read the databases (the hand-made one in mlops' home, the service's).
    for path in (HAND_DB, DB):
        stolen = box.run(f"echo 'get {path} /tmp/stolen.db' | sftp -b - {opts} mlops@{HOST}")
        assert stolen.rc != 0, stolen.stdout


@pytest.fixture(scope="module")
def doctor_after():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANSIBLE_STDOUT_CALLBACK", "ansible.posix.json")
        result = run_playbook(
            SCENARIO, "../../playbooks/doctor.yml", "-e", "doctor_fail_on_error=true", check=False
        )
    results, stats = doctor_results(result, HOST)
    findings = [finding for _name, res in results for finding in res["findings"]]
    return {"rc": result.returncode, "findings": findings, "stats": stats}


# The hand-made RSA keys of root and mlops stay authorized (training scripts that still write to
# the old experiments' sftp:// locations use them), moved by the adoption (mlflow_adopt_restrict_keys)
# to the root-owned file sshd reads, SFTP only and confined, so the doctor has nothing left to warn
# about.
ACCEPTED_WARNINGS: set[str] = set()


def test_doctor_finds_no_problem_after_the_adoption(doctor_after):
    errors = [f"{f['check']}: {f['message']}" for f in doctor_after["findings"] if f["level"] == "error"]
    warnings = [
        f"{f['check']}: {f['message']}"
        for f in doctor_after["findings"]
        if f["level"] == "warn" and f["check"] not in ACCEPTED_WARNINGS
    ]
    assert doctor_after["rc"] == 0 and not errors, "\n".join(errors)
    assert not warnings, "\n".join(warnings)
    assert doctor_after["stats"]["changed"] == 0
