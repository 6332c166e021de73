"""Damage what the role manages; one converge repairs it, the next changes nothing.

Runs after the other test files (file order), on the converged hosts.
"""

from __future__ import annotations

import pytest
from conftest import run_playbook
from pg import HBA_GLOB, PG, SCENARIO_DIR, pg_sql, recap

TIMER = "mlflow-database-backup.timer"


@pytest.fixture(scope="module")
def pg(podman_host):
    return podman_host(PG)


def state(pg) -> dict:
    path = pg.check_output(f"ls {HBA_GLOB}")
    return {
        "hba": pg.file(path).content_string,
        "password_encryption": pg_sql(pg, "SHOW password_encryption"),
        "work_mem": pg_sql(pg, "SHOW work_mem"),
        "timer": (pg.service(TIMER).is_enabled, pg.service(TIMER).is_running),
    }


def test_one_converge_repairs_everything_the_next_changes_nothing(pg):
    before = state(pg)
    path = pg.check_output(f"ls {HBA_GLOB}")
    pg.check_output(f"echo 'host all all 0.0.0.0/0 trust' >> {path}")
    pg_sql(pg, "ALTER SYSTEM SET password_encryption = 'md5'")
    pg_sql(pg, "ALTER SYSTEM SET work_mem = '64MB'")
    pg_sql(pg, "SELECT pg_reload_conf()")
    pg.check_output(f"systemctl disable --now {TIMER}")
    damaged = state(pg)
    for what in before:
        assert damaged[what] != before[what], f"{what} was not damaged"

    repair = run_playbook(SCENARIO_DIR, "converge.yml")
    assert recap(repair.stdout)[PG]["changed"] > 0
    assert state(pg) == before

    again = run_playbook(SCENARIO_DIR, "converge.yml")
    assert all(counts["changed"] == 0 for counts in recap(again.stdout).values()), again.stdout[-3000:]


def test_a_preview_of_the_converged_host_changes_nothing():
    preview = run_playbook(SCENARIO_DIR, "converge.yml", "--check", "--diff")
    assert all(counts["changed"] == 0 for counts in recap(preview.stdout).values()), preview.stdout[-3000:]
