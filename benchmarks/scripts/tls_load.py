"""Runs on the bench server with the MLflow venv's python (``python -`` on stdin; the caller puts
``PASSWORD = "..."`` in front of this source, so the password is in no argv and no environment).

The same load through the TLS proxy (https://localhost:443, HAProxy, the toolkit's CA) and on plain
HTTP straight to MLflow on loopback (http://127.0.0.1:5000), interleaved (plain, TLS, TLS, plain), from
the same place on the same host: CLIENTS threads of log_metric, then of log_batch (BATCH metrics each),
then a SIZE_MB MiB log_artifact and its download. Prints one JSON object.

Usage: python - CLIENTS METRIC_REQUESTS BATCH_REQUESTS BATCH SIZE_MB
"""

import concurrent.futures
import hashlib
import json
import os
import sys
import tempfile
import threading
import time

import requests

PASSWORD = globals().get("PASSWORD", "")
CA = "/etc/haproxy/tls/ca.crt"
URLS = {"plain": "http://127.0.0.1:5000", "tls": "https://localhost:443"}


def phase(base: str, run_ids: list[str], op: str, per_client: int, batch: int) -> dict:
    """len(run_ids) threads, per_client requests each on their own run, one keep-alive session each."""
    local = threading.local()
    stamp = int(time.time() * 1000)

    def client(run_id: str) -> tuple[int, int]:
        if not hasattr(local, "s"):
            local.s = requests.Session()
            local.s.auth = ("admin", PASSWORD)
            local.s.verify = CA
        ok = errors = 0
        for i in range(per_client):
            if op == "log_metric":
                path = "runs/log-metric"
                body = {
                    "run_id": run_id,
                    "key": "loss",
                    "value": 1.0 / (i + 1),
                    "timestamp": stamp + i,
                    "step": i,
                }
            else:
                path = "runs/log-batch"
                metrics = [
                    {"key": f"m{j % 10}", "value": float(j), "timestamp": stamp + i, "step": i * batch + j}
                    for j in range(batch)
                ]
                body = {"run_id": run_id, "metrics": metrics}
            r = local.s.post(f"{base}/api/2.0/mlflow/{path}", json=body, timeout=120)
            ok, errors = (ok + 1, errors) if r.status_code == 200 else (ok, errors + 1)
        return ok, errors

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(run_ids)) as pool:
        results = list(pool.map(client, run_ids))
    wall = time.perf_counter() - started
    ok = sum(r[0] for r in results)
    return {"rps": round(ok / wall, 2), "wall_s": round(wall, 2), "errors": sum(r[1] for r in results)}


def new_runs(base: str, clients: int) -> list[str]:
    s = requests.Session()
    s.auth, s.verify = ("admin", PASSWORD), CA
    exp = s.post(
        f"{base}/api/2.0/mlflow/experiments/create", json={"name": f"tls-{time.time_ns()}"}, timeout=60
    )
    exp.raise_for_status()
    body = {"experiment_id": exp.json()["experiment_id"], "start_time": int(time.time() * 1000)}
    return [
        s.post(f"{base}/api/2.0/mlflow/runs/create", json=body, timeout=60).json()["run"]["info"]["run_id"]
        for _ in range(clients)
    ]


def artifact_round(base: str, payload: str, digest: str) -> dict:
    """One log_artifact of the payload and its download, with MLflow's client; MiB/s each."""
    os.environ.update(
        MLFLOW_TRACKING_USERNAME="admin",
        MLFLOW_TRACKING_PASSWORD=PASSWORD,
        MLFLOW_TRACKING_SERVER_CERT_PATH=CA,
        MLFLOW_HTTP_REQUEST_TIMEOUT="600",
    )
    from mlflow.tracking import MlflowClient  # noqa: PLC0415 - slow import, only here

    client = MlflowClient(base)
    run_id = client.create_run(client.create_experiment(f"tls-art-{time.time_ns()}")).info.run_id
    size = os.path.getsize(payload) / (1 << 20)
    t = time.perf_counter()
    client.log_artifact(run_id, payload)
    up = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as down:
        t = time.perf_counter()
        got = client.download_artifacts(run_id, os.path.basename(payload), down)
        dl = time.perf_counter() - t
        with open(got, "rb") as fh:
            same = hashlib.sha256(fh.read()).hexdigest() == digest
    return {"up_mbps": round(size / up, 1), "down_mbps": round(size / dl, 1), "same": same}


def main() -> int:
    clients, metric_requests, batch_requests, batch, size_mb = map(int, sys.argv[1:6])
    runs = {mode: new_runs(url, clients) for mode, url in URLS.items()}
    out: dict = {"clients": clients, "batch": batch, "size_mb": size_mb, "phases": []}
    # Warm-up of every worker and of both paths (untimed).
    for mode, url in URLS.items():
        phase(url, runs[mode], "log_metric", 5, 1)
    order = ["plain", "tls", "tls", "plain"]
    for op, per_client in (("log_metric", metric_requests), ("log_batch", batch_requests)):
        for mode in order:
            result = phase(URLS[mode], runs[mode], op, per_client, batch)
            out["phases"].append({"op": op, "mode": mode, **result})
    with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as fh:
        payload = fh.name
        for _ in range(size_mb):
            fh.write(os.urandom(1 << 20))
    with open(payload, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    try:
        for mode in order:
            out["phases"].append(
                {"op": "artifact", "mode": mode, **artifact_round(URLS[mode], payload, digest)}
            )
    finally:
        os.unlink(payload)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
