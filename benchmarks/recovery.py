#!/usr/bin/env python3
"""Time from `kill -9` of mlflow.service's main process to a healthy server again.

Runs against a provisioned host reached with `podman exec` (default: the sandbox's
tracking server, so `make sandbox` first). /health is polled over HTTP from this machine at
the container's address (a `podman exec` per poll would itself load a 2-core host and slow
the start it measures); the new main PID is read with `podman exec` until it appears. The
issue's target is 30 s; the Molecule tests only assert that recovery happens (timings are
never pass/fail), this measures it.

Usage: .venv/bin/python benchmarks/recovery.py [--host sandbox-server] [--rounds 3]
Writes benchmarks/results/recovery.json and prints one line per round.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "recovery.json"
# The toolkit's CA (roles/mlflow_proxy), generated on the controller: it verifies the proxy.
TLS = ssl.create_default_context(
    cafile=str(Path(__file__).resolve().parents[1] / "credentials" / "ca" / "ca.crt")
)


def sh(host: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command in the container with `podman exec`, output captured as text."""
    return subprocess.run(["podman", "exec", host, *cmd], check=check, capture_output=True, text=True)


def main_pid(host: str) -> str:
    """mlflow.service's MainPID on the host ("0" while it is not running)."""
    return sh(host, "systemctl", "show", "-p", "MainPID", "--value", "mlflow.service").stdout.strip()


def address(host: str) -> str:
    """The container's first network address (127.0.0.1 if it has none)."""
    out = subprocess.run(
        ["podman", "inspect", host, "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return out[0] if out else "127.0.0.1"


def healthy(health_url: str) -> bool:
    """Whether /health answers 200 within 2 s."""
    try:
        # S310: the URL is always https://<container address>/health, built in main().
        with urllib.request.urlopen(health_url, timeout=2, context=TLS) as resp:  # noqa: S310
            return resp.status == 200
    except OSError:
        return False


def one_round(host: str, health_url: str, limit: float) -> dict:
    """Wait until healthy, kill -9 the main process, time the restart and the next healthy answer."""
    while not healthy(health_url):
        time.sleep(1)
    pid = main_pid(host)
    started = time.monotonic()
    sh(host, "kill", "-9", pid)
    restarted = None
    while time.monotonic() - started < limit:
        if restarted is None and main_pid(host) not in ("0", pid):
            restarted = time.monotonic() - started
        if restarted is not None and healthy(health_url):
            return {"restarted_s": round(restarted, 1), "healthy_s": round(time.monotonic() - started, 1)}
        time.sleep(0.5 if restarted is None else 0.25)
    return {"restarted_s": restarted, "healthy_s": None}


def main() -> int:
    """Run the rounds, print one JSON line per round and the summary, write recovery.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="sandbox-server")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=float, default=300.0, help="give up a round after this many seconds")
    args = parser.parse_args()
    # Through the TLS proxy (MLflow itself listens on loopback): healthy = answering clients.
    health_url = f"https://{address(args.host)}/health"
    rounds = []
    for i in range(args.rounds):
        load = os.getloadavg()[0]
        result = {"round": i + 1, "load_1min": round(load, 2), **one_round(args.host, health_url, args.limit)}
        rounds.append(result)
        print(json.dumps(result), flush=True)
    done = [r["healthy_s"] for r in rounds if r["healthy_s"] is not None]
    summary = {
        "host": args.host,
        "unit": {
            k: sh(args.host, "systemctl", "show", "-p", k, "--value", "mlflow.service").stdout.strip()
            for k in ("RestartUSec", "TimeoutStopUSec")
        },
        "target_s": 30,
        "rounds": rounds,
        "median_healthy_s": statistics.median(done) if done else None,
        "met": bool(done) and statistics.median(done) <= 30 and len(done) == len(rounds),
        "cpus": os.cpu_count(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "rounds"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
