"""The MLflow tracking server role, end to end (Molecule scenario `mlflow`).

mlflow-server runs the role's mlflow.service; mlflow-artifacts is the SFTP artifact host.
A real MLflow client (the server's own venv) talks to the real server; nothing is mocked.
The tests run in file order: the disruptive ones (kill -9, container restart, restore,
upgrade) come last.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest
from conftest import PROJECT_DIR, run_playbook

SCENARIO_DIR = Path(__file__).resolve().parent.parent
SERVER = "mlflow-server"
ARTIFACTS = "mlflow-artifacts"
VENV = "/opt/mlflow"
STATE = "/var/lib/mlflow"
DB = f"{STATE}/mlflow.db"
ARTIFACT_ROOT = "/home/mlops/mlflow/mlruns"
URL = "http://127.0.0.1:5000"
CA = PROJECT_DIR / "credentials" / "ca" / "ca.crt"
BLOB_BYTES = 5 * 1024 * 1024


def admin_password() -> str:
    return (PROJECT_DIR / "credentials" / SERVER / "admin_password").read_text().strip()


def http(
    host,
    url: str,
    *,
    user: str | None = None,
    password: str | None = None,
    host_header: str | None = None,
    cafile: str | None = None,
):
    """(status, body) of a GET from inside HOST, with optional basic auth, Host header and CA file."""
    script = """
import base64, ssl, sys, urllib.request, urllib.error
url, user, password, host_header, cafile = sys.argv[1:6]
req = urllib.request.Request(url)
if user:
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
if host_header:
    req.add_header("Host", host_header)
context = ssl.create_default_context(cafile=cafile) if cafile else None
try:
    with urllib.request.urlopen(req, timeout=30, context=context) as r:
        status, body = r.status, r.read()
except urllib.error.HTTPError as e:
    status, body = e.code, e.read()
except OSError as e:
    status, body = 0, str(e).encode()
sys.stdout.write(str(status) + "\\n" + body.decode(errors="replace")[:2000])
"""
    out = host.run(
        "python3 -c %s %s %s %s %s %s",
        script,
        url,
        user or "",
        password or "",
        host_header or "",
        cafile or "",
    )
    status, _, body = out.stdout.partition("\n")
    return int(status or 0), body


def wait_healthy(host, deadline_s: float) -> float:
    """Seconds until /health answered 200 (raises when DEADLINE_S passes first)."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        status, _ = http(host, f"{URL}/health")
        if status == 200:
            return time.monotonic() - start
        time.sleep(1)
    raise AssertionError(f"/health did not answer 200 within {deadline_s:.0f} s")


def run_client(host, script: str, *, python: str = f"{VENV}/bin/python") -> dict:
    """Run a Python snippet with the venv's MLflow client against the server; returns its JSON."""
    env = {
        "MLFLOW_TRACKING_URI": URL,
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": admin_password(),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "HOME": "/tmp",
    }
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    out = host.run(f"cd /tmp && {prefix} {python} -c {shlex.quote(script)}")
    assert out.rc == 0, f"client failed (rc {out.rc}):\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


CLIENT_SCRIPT = r"""
import hashlib, json, os, urllib.request, base64, uuid
import mlflow
import mlflow.pyfunc

class Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return [2 * x for x in model_input]

exp_name = "molecule-" + uuid.uuid4().hex[:8]
exp_id = mlflow.create_experiment(exp_name)
blob = os.urandom(5 * 1024 * 1024)
with open("/tmp/blob.bin", "wb") as fh:
    fh.write(blob)
with mlflow.start_run(experiment_id=exp_id) as run:
    mlflow.log_params({"optimizer": "rmsprop", "vocab_size": 10000})
    for step, acc in enumerate([0.61, 0.74, 0.83]):
        mlflow.log_metric("accuracy", acc, step=step)
    mlflow.log_artifact("/tmp/blob.bin")
    info = mlflow.pyfunc.log_model(name="model", python_model=Doubler(), pip_requirements=["mlflow"])
run_id = run.info.run_id

# Read everything back through the REST API.
auth = "Basic " + base64.b64encode(
    (os.environ["MLFLOW_TRACKING_USERNAME"] + ":" + os.environ["MLFLOW_TRACKING_PASSWORD"]).encode()).decode()
def get(path):
    req = urllib.request.Request(os.environ["MLFLOW_TRACKING_URI"] + path, headers={"Authorization": auth})
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.read()
data = json.loads(get(f"/api/2.0/mlflow/runs/get?run_id={run_id}"))["run"]
params = {p["key"]: p["value"] for p in data["data"].get("params", [])}
metrics = {m["key"]: m["value"] for m in data["data"].get("metrics", [])}
history = json.loads(get(f"/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=accuracy"))
listing = json.loads(get(f"/api/2.0/mlflow/artifacts/list?run_id={run_id}"))
downloaded = get(f"/api/2.0/mlflow-artifacts/artifacts/{exp_id}/{run_id}/artifacts/blob.bin")
loaded = mlflow.pyfunc.load_model(info.model_uri)
print(json.dumps({
    "experiment_id": exp_id,
    "run_id": run_id,
    "artifact_uri": data["info"]["artifact_uri"],
    "params": params,
    "metrics": metrics,
    "history": [m["value"] for m in sorted(history["metrics"], key=lambda m: m["step"])],
    "listed": sorted(f["path"] for f in listing.get("files", [])),
    "sha_uploaded": hashlib.sha256(blob).hexdigest(),
    "sha_downloaded": hashlib.sha256(downloaded).hexdigest(),
    "downloaded_bytes": len(downloaded),
    "model_id": getattr(info, "model_id", None),
    "model_uri": info.model_uri,
    "prediction": list(loaded.predict([1, 2, 3])),
}))
"""


@pytest.fixture(scope="module")
def server(podman_host):
    return podman_host(SERVER)


@pytest.fixture(scope="module")
def artifact_host(podman_host):
    return podman_host(ARTIFACTS)


@pytest.fixture(scope="module")
def logged_run(server):
    return run_client(server, CLIENT_SCRIPT)


# --- Service, unit, files -----------------------------------------------------------------


def test_service_active_enabled_and_listening(server):
    service = server.service("mlflow")
    assert service.is_running
    assert service.is_enabled
    # Loopback only: the TLS proxy publishes it.
    assert server.socket("tcp://127.0.0.1:5000").is_listening
    assert not server.socket("tcp://0.0.0.0:5000").is_listening


def test_server_runs_as_mlops_with_job_execution_and_telemetry_off(server):
    pid = server.check_output("systemctl show -p MainPID --value mlflow")
    assert server.check_output(f"ps -o user= -p {pid}") == "mlops"
    environ = server.check_output(f"tr '\\0' '\\n' < /proc/{pid}/environ").splitlines()
    assert "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false" in environ
    assert "MLFLOW_DISABLE_TELEMETRY=true" in environ
    cmdline = server.check_output(f"tr '\\0' ' ' < /proc/{pid}/cmdline")
    assert "--artifacts-destination sftp://mlops@mlflow-artifacts:22/home/mlops/mlflow/mlruns" in cmdline
    assert "--app-name basic-auth" in cmdline
    # No huey consumers / job runner: MLflow's job execution is off.
    assert "huey" not in server.check_output("ps -eo args")


def test_unit_is_hardened(server):
    props = dict(
        line.split("=", 1)
        for line in server.check_output(
            "systemctl show mlflow -p User -p Restart -p NoNewPrivileges -p ProtectSystem -p ProtectHome "
            "-p PrivateTmp -p PrivateDevices -p CapabilityBoundingSet -p ReadWritePaths -p RestrictSUIDSGID "
            "-p SystemCallArchitectures -p UMask -p UnitFileState -p KillMode"
        ).splitlines()
    )
    assert props["User"] == "mlops"
    assert props["Restart"] == "on-failure"
    assert props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict"
    assert props["ProtectHome"] in ("read-only", "tmpfs", "yes")
    assert props["PrivateTmp"] == "yes"
    assert props["PrivateDevices"] == "yes"
    assert props["CapabilityBoundingSet"] == ""
    assert props["ReadWritePaths"] == STATE
    assert props["RestrictSUIDSGID"] == "yes"
    assert props["UMask"] == "0027"
    assert props["KillMode"] == "mixed"
    assert props["UnitFileState"] == "enabled"
    assert server.run("systemd-analyze verify /etc/systemd/system/mlflow.service").rc == 0


def test_security_exposure_below_3(server):
    out = server.check_output("systemd-analyze security --no-pager mlflow.service")
    score = float(re.search(r"Overall exposure level for mlflow\.service: ([0-9.]+)", out).group(1))
    assert score < 3.0, out[-3000:]


def test_owners_and_modes(server):
    expected = {
        STATE: ("mlops", "mlops", 0o750),
        DB: ("mlops", "mlops", 0o640),
        f"{STATE}/basic_auth.db": ("mlops", "mlops", 0o640),
        f"{STATE}/basic_auth.ini": ("root", "mlops", 0o640),
        f"{STATE}/backups": ("mlops", "mlops", 0o750),
        "/etc/mlflow/mlflow.env": ("root", "root", 0o600),
        "/etc/systemd/system/mlflow.service": ("root", "root", 0o644),
        VENV: ("root", "root", 0o755),
    }
    for path, (user, group, mode) in expected.items():
        f = server.file(path)
        assert f.exists, path
        assert (f.user, f.group, f.mode) == (user, group, mode), path


def test_secrets_only_in_the_root_only_environment_file(server):
    password = admin_password()
    assert password in server.check_output("cat /etc/mlflow/mlflow.env")
    assert password not in server.check_output("cat /etc/systemd/system/mlflow.service")
    assert password not in server.check_output(f"cat {STATE}/basic_auth.ini")
    # The service account cannot read the environment file.
    assert server.run("runuser -u mlops -- cat /etc/mlflow/mlflow.env").rc != 0


def test_database_is_in_wal_mode(server):
    assert server.check_output(f"sqlite3 {DB} 'PRAGMA journal_mode'") == "wal"


# --- Auth and allowed hosts -----------------------------------------------------------------


def test_auth_required(server):
    search = f"{URL}/api/2.0/mlflow/experiments/search?max_results=1"
    assert http(server, search)[0] == 401
    assert http(server, search, user="admin", password="wrong-password-123")[0] == 401
    assert http(server, search, user="admin", password=admin_password())[0] == 200
    # /health stays open for monitoring.
    assert http(server, f"{URL}/health")[0] == 200


def test_reachable_from_another_host_by_name_only_with_allowed_host_header(artifact_host):
    """Through the TLS proxy (with the toolkit's CA); MLflow's own port answers nobody else."""
    subprocess.run(["podman", "cp", str(CA), f"{ARTIFACTS}:/tmp/ca.crt"], check=True)
    search = "https://mlflow-server/api/2.0/mlflow/experiments/search?max_results=1"
    tls = {"cafile": "/tmp/ca.crt"}
    assert http(artifact_host, search, user="admin", password=admin_password(), **tls)[0] == 200
    assert http(artifact_host, search, **tls)[0] == 401
    assert http(artifact_host, "https://mlflow-server/health", **tls)[0] == 200
    # DNS-rebinding protection: a Host header that is not one of the server's names is refused.
    status, _ = http(
        artifact_host, search, user="admin", password=admin_password(), host_header="evil.example", **tls
    )
    assert status == 403
    # MLflow's own port is loopback only: another host cannot reach it.
    status, body = http(artifact_host, "http://mlflow-server:5000/health")
    assert status == 0, body


# --- A real client ----------------------------------------------------------------------------


def test_client_logs_and_reads_back_params_metrics_model_and_5mb_artifact(logged_run):
    run = logged_run
    assert run["artifact_uri"].startswith("mlflow-artifacts:/")
    assert run["params"] == {"optimizer": "rmsprop", "vocab_size": "10000"}
    assert run["metrics"] == {"accuracy": pytest.approx(0.83)}
    assert run["history"] == pytest.approx([0.61, 0.74, 0.83])
    assert "blob.bin" in run["listed"]
    assert run["downloaded_bytes"] == BLOB_BYTES
    assert run["sha_downloaded"] == run["sha_uploaded"]
    assert run["prediction"] == [2, 4, 6]


BATCH_SCRIPT = r"""
import json, math, time
from mlflow import MlflowClient
from mlflow.entities import Metric
c = MlflowClient()
run_id = c.create_run(c.create_experiment("batch-" + str(time.time_ns()))).info.run_id
t = int(time.time() * 1000)
batch = [Metric(f"m{j % 10}", float(j), t, j) for j in range(999)] + [Metric("m0", math.nan, t, 5000)]
c.log_batch(run_id, metrics=batch)
c.log_batch(run_id, metrics=batch[:2])  # already stored: MLflow's own de-duplicating path
latest = {m.key: (m.value, m.step) for m in c.get_run(run_id).data._metric_objs}
print(json.dumps({
    "m0_history": len(c.get_metric_history(run_id, "m0")),
    "m0_nan": math.isnan(latest["m0"][0]), "m0_step": latest["m0"][1], "m7": latest["m7"],
}))
"""


def test_metric_batches_go_through_the_plugins_bulk_store(server):
    """1,000 metrics in one log_batch (a NaN and a repeated batch included) read back as MLflow
    stores them, and the service's journal shows the plugin's sqlite store in use."""
    got = run_client(server, BATCH_SCRIPT)
    assert got == {"m0_history": 100 + 1, "m0_nan": True, "m0_step": 5000, "m7": [997.0, 997]}
    journal = server.check_output("journalctl -u mlflow --no-pager -o cat")
    assert "SQLite tracking store with bulk metric writes" in journal


def test_artifacts_land_on_the_artifact_host_owned_by_mlops(artifact_host, logged_run):
    run = logged_run
    blob = artifact_host.file(f"{ARTIFACT_ROOT}/{run['experiment_id']}/{run['run_id']}/artifacts/blob.bin")
    assert blob.exists
    assert blob.user == "mlops"
    assert blob.size == BLOB_BYTES
    assert artifact_host.check_output(f"sha256sum {blob.path}").split()[0] == run["sha_uploaded"]
    # The logged model's files are there too, and everything under the run is mlops's.
    models = artifact_host.check_output(f"find {ARTIFACT_ROOT}/{run['experiment_id']} -name MLmodel")
    assert models, "no MLmodel file on the artifact host"
    foreign = artifact_host.check_output(f"find {ARTIFACT_ROOT}/{run['experiment_id']} ! -user mlops")
    assert foreign == ""


def test_roundtrip_leaves_nothing_behind(artifact_host):
    assert not artifact_host.file(f"{ARTIFACT_ROOT}/_mlflow_roundtrip").exists


# --- Faults -----------------------------------------------------------------------------------


SLOW_UPLOAD = r"""
import base64, hashlib, http.client, json, sys, time
cred, path, size_mb, seconds, out = sys.argv[1:6]
token = base64.b64encode(open(cred).read().strip().encode()).decode()
chunk, n = b"m" * (1024 * 1024), int(size_mb)
conn = http.client.HTTPConnection("127.0.0.1", 5000, timeout=600)
conn.putrequest("PUT", "/api/2.0/mlflow-artifacts/artifacts/" + path)
conn.putheader("Authorization", "Basic " + token)
conn.putheader("Content-Length", str(n * len(chunk)))
conn.endheaders()
for _ in range(n):
    conn.send(chunk)
    time.sleep(float(seconds) / n)
resp = conn.getresponse()
json.dump({"status": resp.status, "body": resp.read().decode()[:300]}, open(out, "w"))
"""


def test_a_planned_restart_lets_an_upload_in_flight_finish(server, artifact_host):
    """TimeoutStopSec (60 s) and uvicorn's graceful shutdown: an upload that is still sending when
    `systemctl restart mlflow` comes is answered 200 and lands whole."""
    server.check_output(f"cat > /tmp/slow_upload.py <<'EOF'\n{SLOW_UPLOAD}\nEOF")
    server.check_output("install -m 0600 /dev/null /root/.cred")
    server.check_output(f"cat > /root/.cred <<'EOF'\nadmin:{admin_password()}\nEOF")
    server.check_output(
        "rm -f /tmp/inflight.json && nohup python3 /tmp/slow_upload.py /root/.cred "
        "0/inflight/slow.bin 24 12 /tmp/inflight.json >/tmp/inflight.log 2>&1 &"
    )
    time.sleep(4)
    server.check_output("systemctl restart mlflow")
    server.check_output(
        "for i in $(seq 1 120); do [ -s /tmp/inflight.json ] && exit 0; sleep 1; done; "
        "cat /tmp/inflight.log; exit 1"
    )
    server.run("rm -f /root/.cred")
    answer = json.loads(server.file("/tmp/inflight.json").content_string)
    assert answer["status"] == 200, answer
    landed = artifact_host.file(f"{ARTIFACT_ROOT}/0/inflight/slow.bin")
    assert landed.size == 24 * 1024 * 1024
    wait_healthy(server, 240)


def test_kill_9_of_the_main_process_recovers(server):
    """systemd restarts the server by itself after kill -9 and it answers /health again.

    The time to healthy is printed, not asserted (timings depend on the machine's load): on a
    quiet host it is RestartSec (2 s) + MLflow's start; in these cgroup-v1 containers systemd
    also waits TimeoutStopSec (60 s) for a cgroup-empty event that never comes.
    """
    old_pid = server.check_output("systemctl show -p MainPID --value mlflow")
    restarts = int(server.check_output("systemctl show -p NRestarts --value mlflow"))
    server.check_output(f"kill -9 {old_pid}")
    started = time.monotonic()
    while time.monotonic() - started < 300:
        new_pid = server.check_output("systemctl show -p MainPID --value mlflow")
        if new_pid not in ("0", old_pid) and http(server, f"{URL}/health")[0] == 200:
            break
        time.sleep(1)
    else:
        raise AssertionError("mlflow did not come back after kill -9")
    print(f"healthy again {time.monotonic() - started:.1f} s after kill -9")
    assert int(server.check_output("systemctl show -p NRestarts --value mlflow")) == restarts + 1
    assert server.service("mlflow").is_running


def test_service_comes_back_after_container_restart(server, logged_run):
    subprocess.run(["podman", "restart", "--time", "20", SERVER], check=True, capture_output=True)
    wait_healthy(server, 240)
    assert server.service("mlflow").is_running
    # The artifact store works again: the 5 MB artifact downloads intact.
    check = run_client(
        server,
        "import hashlib, json, mlflow\n"
        f"p = mlflow.artifacts.download_artifacts(run_id='{logged_run['run_id']}', artifact_path='blob.bin', "
        "dst_path='/tmp/after-restart')\n"
        "print(json.dumps({'sha': hashlib.sha256(open(p, 'rb').read()).hexdigest()}))",
    )
    assert check["sha"] == logged_run["sha_uploaded"]


# --- Garbage collection (opt-in) -----------------------------------------------------------


def test_opt_in_gc_removes_deleted_runs_with_their_artifacts(server, artifact_host):
    with_gc = json.dumps({"mlflow_gc_enabled": True, "mlflow_gc_older_than_days": 0})
    # The mlflow role alone (upgrade.yml): the other roles of converge.yml have no part in the gc.
    run_playbook(SCENARIO_DIR, "upgrade.yml", "-e", with_gc)
    assert server.service("mlflow-gc.timer").is_enabled
    made = run_client(
        server,
        "import json, mlflow\n"
        "with open('/tmp/gc.txt', 'w') as fh:\n"
        "    fh.write('collect me')\n"
        "with mlflow.start_run() as r:\n"
        "    mlflow.log_artifact('/tmp/gc.txt')\n"
        "mlflow.MlflowClient().delete_run(r.info.run_id)\n"
        "print(json.dumps({'run_id': r.info.run_id, 'experiment_id': r.info.experiment_id}))",
    )
    run_dir = f"{ARTIFACT_ROOT}/{made['experiment_id']}/{made['run_id']}"
    assert artifact_host.file(f"{run_dir}/artifacts/gc.txt").exists
    server.check_output("systemctl start mlflow-gc.service")
    assert server.check_output("systemctl show -p Result --value mlflow-gc.service") == "success"
    status, _ = http(
        server,
        f"{URL}/api/2.0/mlflow/runs/get?run_id={made['run_id']}",
        user="admin",
        password=admin_password(),
    )
    assert status == 404
    assert not artifact_host.file(f"{run_dir}/artifacts/gc.txt").exists
    # Off again: the units go.
    run_playbook(SCENARIO_DIR, "upgrade.yml")
    assert not server.file("/etc/systemd/system/mlflow-gc.timer").exists


# --- Backups and restore -------------------------------------------------------------------


def newest_backup(server, label: str) -> str:
    return server.check_output(f"ls -1t {STATE}/backups/mlflow-{label}-*.db | head -n 1")


def test_backup_timer_output_restores_into_a_fresh_database(server, logged_run):
    timer = server.service("mlflow-backup.timer")
    assert timer.is_enabled
    assert timer.is_running
    assert (
        server.check_output("systemctl show -p Unit --value mlflow-backup.timer") == "mlflow-backup.service"
    )
    # What the timer starts, started now (while the server runs and writes).
    server.check_output("systemctl start mlflow-backup.service")
    assert server.check_output("systemctl show -p Result --value mlflow-backup.service") == "success"
    backup = newest_backup(server, "scheduled")
    f = server.file(backup)
    assert (f.user, f.mode) == ("mlops", 0o640)
    server.check_output(f"cp {backup} /tmp/fresh.db")
    assert server.check_output("sqlite3 /tmp/fresh.db 'PRAGMA integrity_check'") == "ok"
    found = server.check_output(
        f"sqlite3 /tmp/fresh.db \"SELECT run_uuid FROM runs WHERE run_uuid='{logged_run['run_id']}'\""
    )
    assert found == logged_run["run_id"]


LOAD_SCRIPT = r"""
import json, sys, time
from mlflow import MlflowClient
client, seconds, out = MlflowClient(), float(sys.argv[1]), sys.argv[2]
run = client.create_run(client.get_experiment_by_name("backup-load").experiment_id)
done, errors, end = 0, [], time.time() + seconds
while time.time() < end:
    try:
        client.log_metric(run.info.run_id, "loss", 1.0 / (done + 1), step=done)
        done += 1
    except Exception as exc:
        errors.append(repr(exc)[:200])
json.dump({"logged": done, "errors": errors[:5], "error_count": len(errors)}, open(out, "w"))
"""


def test_backup_completes_while_8_clients_log(server):
    """The one-step copy: a backup under steady writes finishes and the writers see no error."""
    server.check_output(f"cat > /tmp/load.py <<'EOF'\n{LOAD_SCRIPT}\nEOF")
    # The experiment exists before the writers start.
    run_client(server, "import json, mlflow\nmlflow.set_experiment('backup-load')\nprint(json.dumps({}))")
    env = (
        f"MLFLOW_TRACKING_URI={URL} MLFLOW_TRACKING_USERNAME=admin "
        f"MLFLOW_TRACKING_PASSWORD={shlex.quote(admin_password())} MLFLOW_DISABLE_TELEMETRY=true HOME=/tmp"
    )
    for i in range(8):
        out = f"/tmp/load{i}.json"
        server.check_output(
            f"cd /tmp && rm -f {out} && {env} nohup {VENV}/bin/python /tmp/load.py 40 {out} "
            f">/tmp/load{i}.log 2>&1 &"
        )
    time.sleep(10)
    server.check_output("systemctl start mlflow-backup.service")
    assert server.check_output("systemctl show -p Result --value mlflow-backup.service") == "success"
    backup = newest_backup(server, "scheduled")
    assert server.check_output(f"sqlite3 {backup} 'PRAGMA integrity_check'") == "ok"
    server.check_output(
        "for i in $(seq 1 90); do [ $(ls /tmp/load?.json 2>/dev/null | wc -l) = 8 ] && exit 0; "
        "sleep 1; done; exit 1"
    )
    for i in range(8):
        seen = json.loads(server.file(f"/tmp/load{i}.json").content_string)
        assert seen["error_count"] == 0, seen
        assert seen["logged"] > 10, seen


def test_a_failed_backup_fails_the_unit_and_leaves_no_partial_file(server):
    """A full disk (RLIMIT_FSIZE through a drop-in): the unit fails, nothing half-written stays, the
    backups there before are kept, and the next good run succeeds."""
    before = server.check_output(f"ls -1 {STATE}/backups/").split()
    dropin = "/run/systemd/system/mlflow-backup.service.d"
    server.check_output(
        f"mkdir -p {dropin} && printf '[Service]\\nLimitFSIZE=64K\\n' > {dropin}/full-disk.conf"
    )
    try:
        server.check_output("systemctl daemon-reload")
        assert server.run("systemctl start mlflow-backup.service").rc != 0
        assert server.check_output("systemctl show -p Result --value mlflow-backup.service") != "success"
        after = server.check_output(f"ls -1 {STATE}/backups/").split()
        assert not [name for name in after if name.endswith(".partial")], after
        assert set(before) <= set(after)
    finally:
        server.check_output(f"rm -rf {dropin} && systemctl daemon-reload")
        server.run("systemctl reset-failed mlflow-backup.service")
    server.check_output("systemctl start mlflow-backup.service")
    assert server.check_output("systemctl show -p Result --value mlflow-backup.service") == "success"


def test_restore_playbook_brings_back_the_backed_up_state(server, logged_run):
    server.check_output("systemctl start mlflow-backup.service")
    backup = newest_backup(server, "scheduled")
    later = run_client(
        server,
        "import json, mlflow\n"
        "with mlflow.start_run(experiment_id='" + logged_run["experiment_id"] + "') as r:\n"
        "    mlflow.log_param('after_backup', 'yes')\n"
        "print(json.dumps({'run_id': r.info.run_id}))",
    )
    name = backup.rsplit("/", 1)[1]
    restore = str(PROJECT_DIR / "playbooks" / "restore.yml")
    # A name that is not there is refused, listing the ones that are, and nothing changes.
    refused = run_playbook(SCENARIO_DIR, restore, "-e", "mlflow_restore_backup=mlflow-nope.db", check=False)
    assert refused.returncode != 0
    # Under Molecule's settings Ansible prints failed tasks on stderr.
    assert name in refused.stdout + refused.stderr
    assert server.service("mlflow.service").is_running

    run_playbook(SCENARIO_DIR, restore, "-e", f"mlflow_restore_backup={name}")
    pw = admin_password()
    kept = http(
        server, f"{URL}/api/2.0/mlflow/runs/get?run_id={logged_run['run_id']}", user="admin", password=pw
    )
    gone = http(server, f"{URL}/api/2.0/mlflow/runs/get?run_id={later['run_id']}", user="admin", password=pw)
    assert kept[0] == 200
    assert gone[0] == 404, gone
    assert server.check_output(f"sqlite3 {DB} 'PRAGMA journal_mode'") == "wal"
    # What the restore replaced is one restore away: the pre-restore backup holds the later run.
    pre = newest_backup(server, "pre-restore")
    count = server.check_output(
        f"sqlite3 {pre} \"SELECT count(*) FROM runs WHERE run_uuid='{later['run_id']}'\""
    )
    assert count == "1"
    assert server.file(f"{STATE}/backups/basic_auth-pre-restore-{pre.split('-pre-restore-')[1]}").exists


# --- Upgrade ------------------------------------------------------------------------------------

OLD_VERSION = "3.16.1"
NEW_VERSION = "3.17.2"
UP_VENV = "/opt/mlflow-upgrade"
UP_STATE = "/var/lib/mlflow-upgrade"
UP_DB = f"{UP_STATE}/mlflow.db"
UP_WHERE = ["-e", json.dumps({"mlflow_venv": UP_VENV, "mlflow_state_dir": UP_STATE})]


def db_revision(server, db: str) -> str:
    return server.check_output(f"sqlite3 {db} 'SELECT version_num FROM alembic_version'")


def served_version(server) -> tuple[int, str]:
    status, body = http(server, f"{URL}/version", user="admin", password=admin_password())
    return status, body.strip()


@pytest.fixture(scope="module")
def old_install(server) -> dict:
    """An older MLflow in its own versioned venv and database (the service now runs it), with a run."""
    run_playbook(SCENARIO_DIR, "upgrade.yml", *UP_WHERE, "-e", f"mlflow_version={OLD_VERSION}")
    assert server.file(UP_VENV).is_symlink
    assert server.file(UP_VENV).linked_to == f"{UP_VENV}-{OLD_VERSION}"
    assert served_version(server) == (200, OLD_VERSION)
    run = run_client(
        server,
        "import json, mlflow\n"
        "with mlflow.start_run() as r:\n"
        "    mlflow.log_metric('loss', 0.25)\n"
        "print(json.dumps({'run_id': r.info.run_id}))",
        python=f"{UP_VENV}/bin/python",
    )
    return {"revision": db_revision(server, UP_DB), "run_id": run["run_id"]}


def run_readable(server, run_id: str) -> bool:
    status, body = http(
        server, f"{URL}/api/2.0/mlflow/runs/get?run_id={run_id}", user="admin", password=admin_password()
    )
    return status == 200 and run_id in body


@pytest.mark.slow
def test_a_failed_migration_leaves_the_old_version_serving_on_its_intact_database(server, old_install):
    # A trigger of the database's own (as a DBA or another tool might add) that refuses any change
    # of alembic_version: MLflow's real migration applies its first step, then fails stamping it.
    trigger = (
        "CREATE TRIGGER freeze_schema_version BEFORE UPDATE ON alembic_version "
        "BEGIN SELECT RAISE(ABORT, 'schema version frozen'); END;"
    )
    server.check_output(f"runuser -u mlops -- sqlite3 {UP_DB} {shlex.quote(trigger)}")
    schema_before = server.check_output(f"sqlite3 {UP_DB} .schema")
    try:
        failed = run_playbook(
            SCENARIO_DIR, "upgrade.yml", *UP_WHERE, "-e", f"mlflow_version={NEW_VERSION}", check=False
        )
        assert failed.returncode != 0
        # The failure itself is printed on stderr (display_failed_stderr in Molecule's ansible.cfg).
        output = failed.stdout + failed.stderr
        assert f"Upgrading MLflow to {NEW_VERSION} failed" in output, output[-4000:]
        assert "was put back from" in output
        assert "answers /health" in output
        # Not switched: the old version serves, from the old venv, and reads the old run.
        assert server.file(UP_VENV).linked_to == f"{UP_VENV}-{OLD_VERSION}"
        assert server.service("mlflow.service").is_running
        assert served_version(server) == (200, OLD_VERSION)
        assert run_readable(server, old_install["run_id"])
        # The database is the one from before: revision, schema (the half-applied migration's
        # changes gone), integrity.
        assert db_revision(server, UP_DB) == old_install["revision"]
        assert server.check_output(f"sqlite3 {UP_DB} .schema") == schema_before
        assert server.check_output(f"sqlite3 {UP_DB} 'PRAGMA integrity_check'") == "ok"
        # The new venv is kept for the next attempt.
        assert server.file(f"{UP_VENV}-{NEW_VERSION}/bin/mlflow").exists
    finally:
        server.check_output(
            f"runuser -u mlops -- sqlite3 {UP_DB} 'DROP TRIGGER IF EXISTS freeze_schema_version'"
        )


@pytest.mark.slow
def test_changing_mlflow_version_migrates_then_switches_to_a_new_venv(server, old_install):
    # Only mlflow_version changes.
    run_playbook(SCENARIO_DIR, "upgrade.yml", *UP_WHERE, "-e", f"mlflow_version={NEW_VERSION}")
    assert server.file(UP_VENV).linked_to == f"{UP_VENV}-{NEW_VERSION}"
    assert (
        server.check_output(f"{UP_VENV}/bin/python -c 'import mlflow; print(mlflow.__version__)'")
        == NEW_VERSION
    )
    assert served_version(server) == (200, NEW_VERSION)
    new_revision = db_revision(server, UP_DB)
    assert new_revision != old_install["revision"]
    schema = json.loads(
        server.check_output(
            f"runuser -u mlops -- {UP_VENV}/bin/python {UP_VENV}/libexec/mlflow_db.py status --db {UP_DB}"
        )
    )
    assert schema["due"] is False
    assert schema["revision"] == new_revision
    # The pre-upgrade backup holds the old schema and the old run.
    backup = server.check_output(
        f"ls -1t {UP_STATE}/backups/mlflow-pre-upgrade-{old_install['revision']}-*.db | head -n 1"
    )
    assert db_revision(server, backup) == old_install["revision"]
    count = f"sqlite3 {backup} \"SELECT count(*) FROM runs WHERE run_uuid='{old_install['run_id']}'\""
    assert server.check_output(count) == "1"
    # The run survived the migration; the previous venv is kept for a rollback.
    assert run_readable(server, old_install["run_id"])
    assert server.file(f"{UP_VENV}-{OLD_VERSION}/bin/mlflow").exists
