"""Tracking throughput: concurrent REST clients doing log_metric and log_batch.

Against the provisioned server and against a server started by hand as in the team's notes
(`mlflow server -h 0.0.0.0 --backend-store-uri sqlite:///mlflow.db ...`, root, same venv, same
host, other port): requests/s, p50/p99, errors, and the server's RSS/PSS over its process tree.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import threading
import time

import requests
from lab import CA_FILE, HAND_PORT, MLFLOW_BIN, TUNED, Lab, admin_password, loadavg, log, run_script, sh


def pct(values: list[float], q: float) -> float:
    """Percentile (nearest rank) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


class Api:
    """Plain MLflow REST calls (requests), one keep-alive session per thread."""

    def __init__(self, base: str, auth: tuple[str, str] | None, verify: str | bool = True) -> None:
        """A server at base (http(s)://host:port), with basic-auth credentials or None, and the CA."""
        self.requests = requests
        self.base = base
        self.auth = auth
        self.verify = verify
        self.local = threading.local()

    def session(self):
        """This thread's keep-alive session."""
        if not hasattr(self.local, "s"):
            self.local.s = self.requests.Session()
            self.local.s.auth = self.auth
            self.local.s.verify = self.verify
        return self.local.s

    def post(self, path: str, body: dict) -> dict:
        """POST to /api/2.0/mlflow/<path>; the JSON answer, raising on an HTTP error."""
        r = self.session().post(f"{self.base}/api/2.0/mlflow/{path}", json=body, timeout=120)
        r.raise_for_status()
        return r.json()

    def wait_health(self, timeout: float = 240) -> float | None:
        """Seconds until /health answers, None if it did not within timeout."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            with contextlib.suppress(Exception):
                if self.requests.get(f"{self.base}/health", timeout=5, verify=self.verify).status_code == 200:
                    return round(time.monotonic() - started, 1)
            time.sleep(1)
        return None


def request_body(op: str, run_id: str, i: int, batch: int, stamp: int) -> tuple[str, dict]:
    """The REST path and JSON body of a client's i-th log_metric or log_batch request."""
    if op == "log_metric":
        return "runs/log-metric", {
            "run_id": run_id,
            "key": "loss",
            "value": 1.0 / (i + 1),
            "timestamp": stamp + i,
            "step": i,
        }
    metrics = [
        {"key": f"m{j % 10}", "value": float(j), "timestamp": stamp + i, "step": i * batch + j}
        for j in range(batch)
    ]
    return "runs/log-batch", {"run_id": run_id, "metrics": metrics}


def load_phase(
    api: Api, run_ids: list[str], op: str, per_client: int, batch: int, *, seconds: float = 0
) -> dict:
    """Each of len(run_ids) threads sends up to per_client requests on its own run, and stops
    sending after `seconds` (0: no limit) on a machine too loaded to finish them; all timed."""
    stamp = int(time.time() * 1000)

    def client(run_id: str) -> tuple[list[float], list[str]]:
        """One client's requests: the latency of each, and the errors."""
        latencies, errors = [], []
        session = api.session()
        for i in range(per_client):
            if seconds and time.perf_counter() - started > seconds:
                break
            path, payload = request_body(op, run_id, i, batch, stamp)
            t = time.perf_counter()
            try:
                r = session.post(f"{api.base}/api/2.0/mlflow/{path}", json=payload, timeout=60)
                if r.status_code != 200:
                    errors.append(f"HTTP {r.status_code}: {r.text[:200]}")
            except Exception as exc:  # noqa: BLE001 - every failure is counted, whatever its kind
                errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
            latencies.append(time.perf_counter() - t)
        return latencies, errors

    load0 = loadavg()
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(run_ids)) as pool:
        results = list(pool.map(client, run_ids))
    wall = time.perf_counter() - started
    latencies = [x for lat, _ in results for x in lat]
    errors = [e for _, errs in results for e in errs]
    return {
        "op": op,
        "clients": len(run_ids),
        "time_limited": len(latencies) < per_client * len(run_ids),
        "requests": len(latencies),
        "metrics_per_request": 1 if op == "log_metric" else batch,
        "wall_s": round(wall, 2),
        "rps": round((len(latencies) - len(errors)) / wall, 2),
        "p50_ms": round(pct(latencies, 50) * 1000, 1),
        "p99_ms": round(pct(latencies, 99) * 1000, 1),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:3],
        "load_before": load0,
        "load_after": loadavg(),
    }


def proctree(container: str, pid: int, action: str = "measure", pids: tuple[int, ...] = ()) -> dict:
    """scripts/proctree.py in the container: the tree under pid (RSS, PSS, pids); see its docstring."""
    return json.loads(run_script(container, "proctree.py", str(pid), action, *map(str, pids)).stdout)


def stop_tree(container: str, pid: int, grace: float = 20) -> None:
    """SIGTERM to the whole process tree, SIGKILL to what is left after `grace` seconds."""
    pids = proctree(container, pid, "kill")["pids"]
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        alive = sh(
            "podman",
            "exec",
            container,
            "sh",
            "-c",
            " ".join(f"test -e /proc/{p} && echo {p};" for p in pids),
            check=False,
        ).stdout.split()
        if not alive:
            return
        time.sleep(1)
    proctree(container, pid, "kill9", tuple(int(p) for p in alive))


def start_hand_server(container: str) -> int:
    """`mlflow server` as in the team's notes: root, from a shell, in a fresh directory."""
    script = (
        "mkdir -p /root/tracking-server && cd /root/tracking-server && echo $$ > server.pid && "
        f"exec {MLFLOW_BIN} server -h 0.0.0.0 -p {HAND_PORT} --backend-store-uri sqlite:///mlflow.db "
        "--default-artifact-root $(pwd)/artifacts > server.log 2>&1"
    )
    # Telemetry off, like the provisioned server, so that neither sends data out during the run.
    # It runs from the provisioned venv, where the role's plugin package registers its bulk-write
    # sqlite store: turned off here, so this is MLflow's own SqlAlchemyStore, as in a plain install.
    env = ("-e", "MLFLOW_DISABLE_TELEMETRY=true", "-e", "MLFLOW_SQLITE_BULK_METRICS=false")
    sh("podman", "exec", "-d", *env, container, "bash", "-c", script)
    for _ in range(50):
        pid = sh(
            "podman", "exec", container, "cat", "/root/tracking-server/server.pid", check=False
        ).stdout.strip()
        if pid:
            return int(pid)
        time.sleep(0.2)
    raise RuntimeError("the hand-run server did not start")


def setup_runs(api: Api, args: argparse.Namespace) -> list[str]:
    """An experiment and one run per client, then an untimed warm-up of every worker."""
    exp = api.post("experiments/create", {"name": f"bench-{int(time.time())}"})["experiment_id"]
    body = {"experiment_id": exp, "start_time": int(time.time() * 1000)}
    with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
        created = pool.map(lambda _: api.post("runs/create", body), range(args.clients))
        run_ids = [r["run"]["info"]["run_id"] for r in created]
    load_phase(api, run_ids, "log_metric", 5, 1, seconds=20)
    load_phase(api, run_ids, "log_batch", 1, args.batch_size, seconds=20)
    return run_ids


def measure(server: str, servers: dict[str, Api], pids: dict[str, int], args: argparse.Namespace) -> dict:
    """Set-up, then the interleaved load phases with the servers' memory before and after each."""
    out: dict = {"servers": {}, "phases": []}
    auth = run_script(server, "auth_cost.py", python=f"{MLFLOW_BIN.rsplit('/', 1)[0]}/python")
    out["auth_check"] = json.loads(auth.stdout)
    # Not fatal: a server that never gets healthy is measured all the same (as errors).
    out["hand_run_health_s"] = servers["hand-run"].wait_health()
    out["provisioned_health_s"] = servers["provisioned"].wait_health()
    runs = {}
    for name, api in servers.items():
        out["servers"][name] = {"url": api.base, "auth": api.auth is not None, "rss": []}
        try:
            runs[name] = setup_runs(api, args)
        except Exception as exc:  # noqa: BLE001 - reported; the other server is still measured
            out["servers"][name]["error"] = f"set-up failed: {type(exc).__name__}: {str(exc)[:300]}"
            log(f"tracking: {name}: {out['servers'][name]['error']}")
        out["servers"][name]["rss"].append(proctree(server, pids[name]))
    # Interleaved, alternating order: background load on the shared machine hits both alike.
    plan = [
        ("log_metric", "provisioned"),
        ("log_metric", "hand-run"),
        ("log_batch", "hand-run"),
        ("log_batch", "provisioned"),
    ]
    for op, name in [(op, name) for op, name in plan if name in runs]:
        per_client = args.metric_requests if op == "log_metric" else args.batch_requests
        log(f"tracking: {name} {op}, {args.clients} clients x {per_client}")
        phase = load_phase(
            servers[name], runs[name], op, per_client, args.batch_size, seconds=args.phase_seconds
        )
        phase["server"] = name
        out["phases"].append(phase)
        out["servers"][name]["rss"].append(proctree(server, pids[name]))
        log(
            f"  {phase['rps']} req/s, p50 {phase['p50_ms']} ms, p99 {phase['p99_ms']} ms, "
            f"errors {phase['errors']}, RSS {out['servers'][name]['rss'][-1]['rss_mb']} MB"
        )
    for name in servers:
        samples = out["servers"][name]["rss"]
        out["servers"][name]["rss_max_mb"] = max(s["rss_mb"] for s in samples)
        out["servers"][name]["pss_max_mb"] = max(s["pss_mb"] for s in samples)
        out["servers"][name]["processes"] = samples[-1]["processes"]
    return out


def server_logs(server: str, out: dict) -> None:
    """Into out: the hand-run server's worker deaths and the tracking store each server ran."""
    # uvicorn kills a worker that misses its 5 s health ping (still importing on a busy host).
    deaths = sh(
        "podman", "exec", server, "grep", "-c", "died", "/root/tracking-server/server.log", check=False
    )
    out["hand_run_worker_deaths"] = int(deaths.stdout.strip() or 0)
    # The store each server ran: the plugin's store logs one line per worker when it starts.
    for name, cmd in (
        ("hand-run", "cat /root/tracking-server/server.log"),
        ("provisioned", "journalctl -u mlflow --no-pager -o cat"),
    ):
        text = sh("podman", "exec", server, "sh", "-c", cmd, check=False).stdout
        bulk = "bulk metric writes" in text
        out["servers"].setdefault(name, {})["store"] = (
            "plugin (bulk metric writes)" if bulk else "MLflow's SqlAlchemyStore"
        )


def run(lab: Lab, args: argparse.Namespace) -> dict:
    """The section: the provisioned server on the tuned hosts against a hand-run one beside it."""
    server = TUNED["server"]
    ip = lab.ips[server]
    servers = {
        # Through the TLS proxy, as clients reach it (MLflow itself listens on loopback).
        "provisioned": Api(f"https://{ip}", ("admin", admin_password(server)), str(CA_FILE)),
        "hand-run": Api(f"http://{ip}:{HAND_PORT}", None),
    }
    pids = {
        "provisioned": int(
            sh(
                "podman", "exec", server, "systemctl", "show", "-p", "MainPID", "--value", "mlflow"
            ).stdout.strip()
        )
    }
    log("tracking: starting the hand-run server on port 5001")
    pids["hand-run"] = start_hand_server(server)
    out: dict = {"servers": {}, "phases": []}
    try:
        out = measure(server, servers, pids, args)
    finally:
        server_logs(server, out)
        stop_tree(server, pids["hand-run"])
    return {"clients": args.clients, **out}
