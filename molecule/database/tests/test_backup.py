"""Dumps by the timer, pruned by age, and a restore through playbooks/database_restore.yml."""

from __future__ import annotations

import pytest
from conftest import run_playbook
from pg import (
    APP,
    APP_CA,
    APP_PGPASS,
    AUTH_DB,
    BACKUP_DIR,
    CA_CERT,
    PASSWORD_FILE,
    PG,
    SCENARIO_DIR,
    TRACKING_DB,
    USER,
    app_psql,
    recap,
    write_on,
)

SERVICE = "mlflow-database-backup.service"
OLD = f"{TRACKING_DB}.scheduled.20200101T000000000000Z.dump"


@pytest.fixture(scope="module")
def app(podman_host):
    host = podman_host(APP)
    write_on(APP, APP_CA, CA_CERT.read_text(), mode="0644")
    write_on(APP, APP_PGPASS, f"{PG}:5432:*:{USER}:{PASSWORD_FILE.read_text().strip()}\n")
    return host


@pytest.fixture(scope="module")
def pg(podman_host):
    return podman_host(PG)


def listing(pg) -> set[str]:
    return set(pg.check_output(f"ls -1 {BACKUP_DIR}").split())


def dump_now(pg) -> set[str]:
    """Start the dump service (oneshot: returns when it finished) and return the new files."""
    before = listing(pg)
    pg.check_output(f"systemctl start {SERVICE}")
    return listing(pg) - before


def test_the_timer_is_enabled_and_waiting(pg):
    timer = pg.service("mlflow-database-backup.timer")
    assert timer.is_enabled and timer.is_running
    backup_dir = pg.file(BACKUP_DIR)
    assert (backup_dir.user, backup_dir.group, backup_dir.mode) == ("postgres", "postgres", 0o700)


def test_a_run_dumps_each_database_and_prunes_by_age(pg):
    # An expired dump and a partial file a killed run left behind.
    pg.check_output(
        f"runuser -u postgres -- sh -c 'echo old > {BACKUP_DIR}/{OLD}"
        f' && touch -d "30 days ago" {BACKUP_DIR}/{OLD}'
        f" && echo partial > {BACKUP_DIR}/{AUTH_DB}.scheduled.20261129T000000000000Z.dump.partial'"
    )
    new = dump_now(pg)
    assert sorted(name.split(".")[0] for name in new) == sorted([TRACKING_DB, AUTH_DB])
    assert all(name.split(".")[1] == "scheduled" and name.endswith(".dump") for name in new)
    remaining = listing(pg)
    assert OLD not in remaining
    assert not [name for name in remaining if name.endswith(".partial")]
    for name in new:
        dump = pg.file(f"{BACKUP_DIR}/{name}")
        assert (dump.user, dump.mode) == ("postgres", 0o600)
        # A real custom-format archive: pg_restore reads its table of contents.
        pg.check_output(f"runuser -u postgres -- pg_restore --list {BACKUP_DIR}/{name}")
    assert pg.service(SERVICE).is_valid
    assert "Result=success" in pg.check_output(f"systemctl show -p Result {SERVICE}")


def test_a_failed_dump_fails_the_unit_visibly(pg):
    pg.check_output(f"mkdir -p /etc/systemd/system/{SERVICE}.d")
    pg.check_output(
        f"printf '[Service]\\nExecStart=\\nExecStart=/usr/bin/python3 "
        f"/usr/local/libexec/mlflow-database/mlflow_pg_dump.py --dest {BACKUP_DIR} --db no_such_db\\n'"
        f" > /etc/systemd/system/{SERVICE}.d/broken.conf && systemctl daemon-reload"
    )
    try:
        result = pg.run(f"systemctl start {SERVICE}")
        assert result.rc != 0
        assert "Result=exit-code" in pg.check_output(f"systemctl show -p Result {SERVICE}")
        assert not [name for name in listing(pg) if name.startswith("no_such_db")]
    finally:
        pg.check_output(
            f"rm -rf /etc/systemd/system/{SERVICE}.d && systemctl daemon-reload"
            f" && systemctl reset-failed {SERVICE}"
        )


def test_the_restore_playbook_brings_back_a_table_dropped_after_the_dump(pg, app):
    create = app_psql(
        app,
        "CREATE TABLE restore_probe (id int PRIMARY KEY);"
        " INSERT INTO restore_probe SELECT generate_series(1, 50);",
    )
    assert create.rc == 0, create.stderr
    new = dump_now(pg)
    dump = next(name for name in new if name.startswith(f"{TRACKING_DB}."))
    drop = app_psql(app, "DROP TABLE restore_probe")
    assert drop.rc == 0, drop.stderr
    assert app.service("mlflow").is_running

    result = run_playbook(
        SCENARIO_DIR, "../../playbooks/database_restore.yml", "-e", f"mlflow_database_restore_file={dump}"
    )
    assert "Stop mlflow.service" in result.stdout
    assert recap(result.stdout)[APP]["changed"] == 2  # stopped, started
    assert f"Restored {dump}" in result.stdout

    count = app_psql(app, "SELECT count(*) FROM restore_probe")
    assert count.rc == 0, count.stderr
    assert count.stdout.strip() == "50"
    # The server's role still owns what it created and can change it.
    ddl = app_psql(app, "ALTER TABLE restore_probe ADD COLUMN n int; DROP TABLE restore_probe;")
    assert ddl.rc == 0, ddl.stderr
    pre_restore = [name for name in listing(pg) if name.startswith(f"{TRACKING_DB}.pre-restore.")]
    assert len(pre_restore) == 1
    assert pg.file(f"{BACKUP_DIR}/{pre_restore[0]}").mode == 0o600
    assert app.service("mlflow").is_running


def test_the_restore_refuses_a_missing_dump_before_stopping_anything(app):
    missing = f"{TRACKING_DB}.scheduled.20990101T000000000000Z.dump"
    result = run_playbook(
        SCENARIO_DIR,
        "../../playbooks/database_restore.yml",
        "-e",
        f"mlflow_database_restore_file={missing}",
        check=False,
    )
    assert result.returncode != 0
    assert "does not exist on database-pg" in result.stdout + result.stderr
    assert "Stop mlflow.service" not in result.stdout
    assert app.service("mlflow").is_running
