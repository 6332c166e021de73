"""artifact_backup: restic backs the artifact tree up to /srv/artifact-backup (another disk in
real life) on a timer, keeps a bounded number of snapshots, never shows its password, fails
visibly, is repaired by one converge, and playbooks/artifact_restore.yml brings a deleted run's
artifacts back byte for byte with their owner and modes. Real restic, real systemd."""

from __future__ import annotations

import json

import pytest
from artifact_store_helpers import DEFAULT_HOST, DEFAULT_ROOT, SCENARIO_DIR, recap
from conftest import run_playbook

CUSTOM_HOST = "artifact-store-custom"
HOSTS = (DEFAULT_HOST, CUSTOM_HOST)
ROOTS = {DEFAULT_HOST: DEFAULT_ROOT, CUSTOM_HOST: "/srv/mlflow/artifacts"}
REPO = "/srv/artifact-backup"
PASSWORD_FILE = "/etc/artifact-backup/password"  # noqa: S105 (a path, not a password)
SERVICE = "artifact-backup.service"
TIMER = "artifact-backup.timer"
RESTIC = f"RESTIC_REPOSITORY={REPO} RESTIC_PASSWORD_FILE={PASSWORD_FILE} restic"
RESTORE = "../../playbooks/artifact_restore.yml"
LIMIT = ("--limit", DEFAULT_HOST)
RUN_PATH = "42/0123456789abcdef"
RUN = f"{DEFAULT_ROOT}/{RUN_PATH}"
# A run as MLflow writes it over SFTP (as mlops, umask 0027): a binary model, text files.
MAKE_RUN = f"""set -e
su mlops -s /bin/sh -c 'umask 0027
mkdir -p {RUN}/artifacts/model
head -c 300000 /dev/urandom > {RUN}/artifacts/model/model.pkl
printf "name: run\\n" > {RUN}/meta.yaml
printf "accuracy 0.9\\n" > {RUN}/artifacts/metrics.txt'
touch -d '2026-01-02 03:04:05' {RUN}/artifacts/metrics.txt
"""


def snapshots(host, name: str) -> list[dict]:
    return json.loads(host.check_output(f"{RESTIC} snapshots --json --host {name}"))


def run_listing(host) -> list[str]:
    """Every entry of the run with owner, group and mode; files also with size, mtime and checksum.
    (Directory mtimes are left out: the restore does not reset the times of directories.)"""
    return host.check_output(
        f"cd {RUN} && {{ find . -type d -printf '%p %y %u %g %m\\n'; "
        "find . -type f -printf '%p %y %u %g %m %s %T@ ' -exec sh -c 'sha256sum < \"$1\"' _ {} \\; ; } | sort"
    ).splitlines()


def backup(host) -> None:
    host.check_output(f"systemctl start {SERVICE}")


@pytest.mark.parametrize("name", HOSTS)
def test_timer_is_enabled_and_the_password_file_root_only(podman_host, name):
    host = podman_host(name)
    assert host.check_output(f"systemctl is-enabled {TIMER}") == "enabled"
    assert host.check_output(f"systemctl is-active {TIMER}") == "active"
    modes = host.check_output(f"stat -c '%U %G %a' {PASSWORD_FILE} /etc/artifact-backup {REPO}")
    assert modes.splitlines() == [
        "root root 600",
        "root root 700",
        "root root 700",
    ]


@pytest.mark.parametrize("name", HOSTS)
def test_starting_the_service_makes_a_snapshot_of_the_root(podman_host, name):
    host = podman_host(name)
    before = {snap["id"] for snap in snapshots(host, name)}
    backup(host)
    assert host.check_output(f"systemctl show -P Result {SERVICE}") == "success"
    new = [snap for snap in snapshots(host, name) if snap["id"] not in before]
    assert len(new) == 1
    assert new[0]["paths"] == [ROOTS[name]]
    assert new[0]["hostname"] == name


def test_deleted_run_is_restored_byte_identical_with_owner_and_modes(podman_host):
    host = podman_host(DEFAULT_HOST)
    host.check_output(f"rm -rf {DEFAULT_ROOT}/42")
    host.check_output(MAKE_RUN)
    original = run_listing(host)
    assert any("model.pkl f mlops mlops 640 300000" in line for line in original)
    backup(host)
    host.check_output(f"rm -rf {RUN}")

    result = run_playbook(
        SCENARIO_DIR,
        RESTORE,
        *LIMIT,
        "-e",
        "artifact_backup_restore_experiment_id=42",
        "-e",
        "artifact_backup_restore_run_id=0123456789abcdef",
    )
    assert run_listing(host) == original
    # The playbook says what it restored; the staging directory is gone.
    assert "42/0123456789abcdef/artifacts/model/model.pkl" in result.stdout
    assert host.check_output("ls /var/tmp | grep -c '^artifact-restore' || true") == "0"

    # A partly deleted run: only the missing file comes back, a changed file is kept and listed.
    host.check_output(f"rm {RUN}/artifacts/model/model.pkl")
    host.check_output(f"su mlops -s /bin/sh -c 'echo newer >> {RUN}/meta.yaml'")
    changed_meta = host.check_output(f"sha256sum < {RUN}/meta.yaml")
    result = run_playbook(SCENARIO_DIR, RESTORE, *LIMIT, "-e", f"artifact_backup_restore_path={RUN_PATH}")
    assert host.check_output(f"sha256sum < {RUN}/meta.yaml") == changed_meta
    restored = {line for line in run_listing(host) if "model.pkl" in line}
    assert restored == {line for line in original if "model.pkl" in line}
    kept = result.stdout.split('"kept_because_they_exist_and_differ"', 1)[1].split("]", 1)[0]
    assert "meta.yaml" in kept
    host.check_output(f"rm -rf {DEFAULT_ROOT}/42")


def test_restore_of_a_run_not_in_the_snapshot_fails_and_names_the_fix(podman_host):
    host = podman_host(DEFAULT_HOST)
    result = run_playbook(
        SCENARIO_DIR, RESTORE, *LIMIT, "-e", "artifact_backup_restore_path=42/no-such-run", check=False
    )
    assert result.returncode != 0
    assert "has no /home/mlops/mlflow/mlruns/42/no-such-run" in result.stdout + result.stderr
    assert not host.file(f"{DEFAULT_ROOT}/42/no-such-run").exists
    assert host.check_output("ls /var/tmp | grep -c '^artifact-restore' || true") == "0"


def test_retention_bounds_the_number_of_snapshots(podman_host):
    host = podman_host(DEFAULT_HOST)
    # Six starts in a row, more than systemd's default start limit (5 in 10 s), which a fast run
    # hits: every one is run, none refused with start-limit-hit (StartLimitIntervalSec=0).
    for _ in range(6):
        backup(host)
    # keep-last 3 (converge.yml); keep-daily/weekly/monthly keep the newest, already among them
    # (one more only when the scenario spans midnight).
    assert 3 <= len(snapshots(host, DEFAULT_HOST)) <= 4


def test_a_failing_backup_fails_the_unit(podman_host):
    host = podman_host(DEFAULT_HOST)
    host.check_output(f"mv {REPO}/config {REPO}/config.away")
    try:
        started = host.run(f"systemctl start {SERVICE}")
        journal = host.run(f"journalctl -u {SERVICE} -n 30 --no-pager -o short-precise").stdout
        assert started.rc != 0, f"the backup did not fail: {started.stdout}{started.stderr}\n{journal}"
        assert host.run(f"systemctl is-failed {SERVICE}").stdout.strip() == "failed", journal
        # restic itself failed (not systemd refusing the start).
        assert host.check_output(f"systemctl show -P Result {SERVICE}") == "exit-code", journal
    finally:
        host.check_output(f"mv {REPO}/config.away {REPO}/config")
    backup(host)
    assert host.check_output(f"systemctl show -P Result {SERVICE}") == "success"


@pytest.mark.parametrize("name", HOSTS)
def test_the_password_is_in_no_unit_property_or_log(podman_host, name):
    host = podman_host(name)
    password = host.check_output(f"cat {PASSWORD_FILE}")
    assert len(password) >= 32
    unit = host.check_output(f"systemctl cat {SERVICE} {TIMER}")
    assert f"RESTIC_PASSWORD_FILE={PASSWORD_FILE}" in unit
    assert password not in unit
    assert password not in host.check_output(f"systemctl show {SERVICE} {TIMER}")
    assert password not in host.check_output("journalctl --no-pager -o cat")


def test_damage_is_repaired_by_one_converge(podman_host):
    host = podman_host(DEFAULT_HOST)
    password = host.check_output(f"cat {PASSWORD_FILE}")
    host.check_output(f"systemctl disable --now {TIMER}")
    host.check_output(f"echo wrong > {PASSWORD_FILE} && chmod 0644 {PASSWORD_FILE}")

    result = run_playbook(SCENARIO_DIR, "converge.yml", *LIMIT)
    # The password file (content and mode in one task) and the timer.
    assert recap(result.stdout, DEFAULT_HOST)["changed"] == 2
    assert password not in result.stdout
    assert host.check_output(f"stat -c '%U %G %a' {PASSWORD_FILE}") == "root root 600"
    assert host.check_output(f"cat {PASSWORD_FILE}") == password
    assert host.check_output(f"systemctl is-enabled {TIMER}") == "enabled"
    assert host.check_output(f"systemctl is-active {TIMER}") == "active"
    backup(host)
    assert host.check_output(f"systemctl show -P Result {SERVICE}") == "success"


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (f"artifact_backup_repository={DEFAULT_ROOT}/backup", "artifact_backup_repository"),
        ("artifact_backup_repository=srv/backup", "artifact_backup_repository"),
        (
            '{"artifact_backup_keep_last": 0, "artifact_backup_keep_daily": 0, '
            '"artifact_backup_keep_weekly": 0, "artifact_backup_keep_monthly": 0}',
            "artifact_backup_keep_last/daily/weekly/monthly",
        ),
    ],
)
def test_bad_input_is_refused_before_any_change(podman_host, extra, named):
    host = podman_host(DEFAULT_HOST)
    unit_before = host.check_output(f"systemctl cat {SERVICE}")
    result = run_playbook(SCENARIO_DIR, "converge.yml", *LIMIT, "-e", extra, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert named in output
    assert "Fix:" in output
    assert recap(result.stdout, DEFAULT_HOST)["changed"] == 0
    assert host.check_output(f"systemctl cat {SERVICE}") == unit_before
