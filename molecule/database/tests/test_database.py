"""The database tier against a real PostgreSQL and a real client host (molecule/database)."""

from __future__ import annotations

import stat

import pytest
from conftest import container_ip
from pg import (
    APP,
    APP_CA,
    APP_PGPASS,
    AUTH_DB,
    CA_CERT,
    CA_KEY,
    EXPECTED_MAX_CONNECTIONS,
    HBA_GLOB,
    PASSWORD_FILE,
    PG,
    TRACKING_DB,
    USER,
    app_psql,
    conninfo,
    pg_sql,
    write_on,
)


@pytest.fixture(scope="module")
def app(podman_host):
    """The app host with the CA certificate and a 0600 password file, as a tracking server has them."""
    host = podman_host(APP)
    write_on(APP, APP_CA, CA_CERT.read_text(), mode="0644")
    password = PASSWORD_FILE.read_text().strip()
    write_on(APP, APP_PGPASS, f"{PG}:5432:*:{USER}:{password}\n")
    assert host.file(APP_PGPASS).mode == 0o600
    return host


@pytest.fixture(scope="module")
def pg(podman_host):
    return podman_host(PG)


def test_generated_secrets_are_private_on_the_controller():
    assert stat.S_IMODE(PASSWORD_FILE.stat().st_mode) == 0o600
    assert len(PASSWORD_FILE.read_text().strip()) == 32
    assert stat.S_IMODE(CA_KEY.stat().st_mode) == 0o600
    assert "BEGIN CERTIFICATE" in CA_CERT.read_text()


@pytest.mark.parametrize("db", [TRACKING_DB, AUTH_DB])
def test_the_server_connects_with_verify_full_and_runs_ddl(app, db):
    table = f"probe_ddl_{db}"
    result = app_psql(
        app,
        f"CREATE TABLE {table} (id int PRIMARY KEY, name text); ALTER TABLE {table} ADD COLUMN n int; "
        f"INSERT INTO {table} VALUES (1, 'a', 2); SELECT count(*) FROM {table}; DROP TABLE {table};",
        db=db,
    )
    assert result.rc == 0, result.stderr
    assert result.stdout.split() == ["1"]
    ssl = app_psql(app, "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()", db=db)
    assert ssl.rc == 0, ssl.stderr
    assert ssl.stdout.strip().startswith("t|TLSv1.")


def test_a_connection_without_tls_is_refused_by_pg_hba(app):
    result = app_psql(app, "SELECT 1", sslmode="disable")
    assert result.rc != 0
    assert "no pg_hba.conf entry" in result.stderr
    assert "no encryption" in result.stderr


def test_other_databases_are_refused(app):
    result = app_psql(app, "SELECT 1", db="postgres")
    assert result.rc != 0
    assert "no pg_hba.conf entry" in result.stderr


def test_a_wrong_password_is_refused(app):
    result = app.run(f"PGPASSWORD=not-the-password psql -w -X -tA '{conninfo()}' -c 'SELECT 1'")
    assert result.rc != 0
    assert "password authentication failed" in result.stderr


def test_a_wrong_server_name_fails_verify_full(app):
    # The certificate names database-pg and its addresses; "localhost" from the app host is not it
    # (and nothing listens there): use the address under a name the certificate does not carry.
    ip = container_ip(PG)
    app.run(f"grep -q ' wrong-name$' /etc/hosts || echo '{ip} wrong-name' >> /etc/hosts")
    result = app_psql(app, "SELECT 1", host="wrong-name")
    assert result.rc != 0
    assert "does not match host name" in result.stderr


def test_tcp_from_the_database_host_itself_is_refused(pg):
    result = pg.run(
        "PGPASSWORD=x psql -w -X -tA"
        " 'host=%s port=5432 dbname=%s user=%s sslmode=require connect_timeout=10' -c 'SELECT 1'",
        PG,
        TRACKING_DB,
        USER,
    )
    assert result.rc != 0
    assert "no pg_hba.conf entry" in result.stderr


def test_pg_hba_holds_only_the_peer_line_and_the_servers_hostssl_lines(pg):
    path = pg.check_output(f"ls {HBA_GLOB}")
    lines = [
        line.split()
        for line in pg.file(path).content_string.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    app_net = f"{container_ip(APP)}/32"
    assert lines == [
        ["local", "all", "postgres", "peer"],
        ["hostssl", TRACKING_DB, USER, app_net, "scram-sha-256"],
        ["hostssl", AUTH_DB, USER, app_net, "scram-sha-256"],
    ]
    assert pg_sql(pg, "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL") == "0"


def test_the_password_is_stored_as_scram(pg):
    assert (
        pg_sql(pg, f"SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = '{USER}'")
        == "t"
    )
    assert pg_sql(pg, "SHOW password_encryption") == "scram-sha-256"


def test_the_role_is_least_privileged(pg):
    flags = pg_sql(
        pg,
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin "
        f"FROM pg_roles WHERE rolname = '{USER}'",
    )
    assert flags == "f|f|f|f|f|t"
    for db in (TRACKING_DB, AUTH_DB):
        assert (
            pg_sql(pg, f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{db}'")
            == "postgres"
        )
        assert (
            pg_sql(pg, "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'public'", db=db)
            == USER
        )
        # PUBLIC lost CONNECT: a role without a grant could not connect even if pg_hba let it.
        assert pg_sql(pg, f"SELECT has_database_privilege('pg_monitor', '{db}', 'CONNECT')") == "f"
        assert pg_sql(pg, f"SELECT has_database_privilege('{USER}', '{db}', 'CONNECT')") == "t"


def test_max_connections_is_the_computed_value(pg):
    assert pg_sql(pg, "SHOW max_connections") == str(EXPECTED_MAX_CONNECTIONS)
    assert pg_sql(pg, "SELECT count(*) FROM pg_settings WHERE pending_restart") == "0"


def test_tls_settings_and_key(pg):
    assert pg_sql(pg, "SHOW ssl") == "on"
    assert pg_sql(pg, "SHOW ssl_cert_file") == "/etc/postgresql/mlflow-tls/server.crt"
    key = pg.file("/etc/postgresql/mlflow-tls/server.key")
    assert (key.user, key.group, key.mode) == ("postgres", "postgres", 0o600)
    assert pg_sql(pg, "SHOW listen_addresses") == container_ip(PG)


def test_the_version_is_debians(pg):
    release = pg.system_info.codename
    major = pg_sql(pg, "SHOW server_version_num")[:2]
    assert major == {"bookworm": "15", "trixie": "17"}[release]
    assert pg.service(f"postgresql@{major}-main").is_running
    assert pg.service(f"postgresql@{major}-main").is_enabled
