"""Shared helpers of the database scenario's tests (not a test module)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from conftest import PROJECT_DIR

SCENARIO_DIR = Path(__file__).resolve().parents[1]
PG, APP = "database-pg", "database-app"
PASSWORD_FILE = PROJECT_DIR / "credentials" / PG / "mlflow_database_password"
CA_CERT = PROJECT_DIR / "credentials" / "ca" / "ca.crt"
CA_KEY = PROJECT_DIR / "credentials" / "ca" / "ca.key"
TRACKING_DB, AUTH_DB, USER = "mlflow", "mlflow_auth", "mlflow"
BACKUP_DIR = "/var/backups/mlflow-postgresql"
HBA_GLOB = "/etc/postgresql/*/main/pg_hba.conf"
# molecule.yml: 1 tracking server x (2 workers + 1) x 3 engines x (pool 3 + overflow 2) + 10 reserved.
EXPECTED_MAX_CONNECTIONS = 1 * (2 + 1) * 3 * (3 + 2) + 10
# Where the tests put the CA certificate and the password file on the app host.
APP_CA, APP_PGPASS = "/root/test-ca.crt", "/root/test-pgpass"


def write_on(container: str, path: str, content: str, mode: str = "0600") -> None:
    """Write CONTENT to PATH in CONTAINER through stdin (never on a command line)."""
    subprocess.run(
        ["podman", "exec", "-i", container, "sh", "-c", f"umask 077; cat > {path}; chmod {mode} {path}"],
        input=content,
        text=True,
        check=True,
    )


def conninfo(db: str = TRACKING_DB, sslmode: str = "verify-full", host: str = PG) -> str:
    return (
        f"host={host} port=5432 dbname={db} user={USER} sslmode={sslmode} sslrootcert={APP_CA}"
        " connect_timeout=10"
    )


def app_psql(app, sql: str, **kwargs):
    """Run SQL with psql on the app host as the servers' role, password from the 0600 PGPASSFILE."""
    return app.run(
        f"PGPASSFILE={APP_PGPASS} psql -w -X -q -v ON_ERROR_STOP=1 -tA %s -c %s",
        conninfo(**kwargs),
        sql,
    )


def pg_sql(pg, sql: str, db: str = "postgres") -> str:
    """SQL as the postgres superuser over the database host's socket (peer)."""
    return pg.check_output(
        "runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -tA -d %s -c %s", db, sql
    ).strip()


def recap(stdout: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host."""
    out = {}
    for host, fields in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", stdout, re.M):
        out[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", fields)}
    return out
