"""TLS cost: the same load through the TLS proxy (HAProxy on 443) and on plain HTTP to MLflow.

MLflow listens on the server's loopback only, so the load runs inside the server host
(scripts/tls_load.py with the MLflow venv's python), against https://localhost:443 (the proxy,
verified with the toolkit's CA) and http://127.0.0.1:5000 (MLflow itself), interleaved
(plain, TLS, TLS, plain) so that background load hits both alike. Reported, never asserted;
the aim is that TLS costs under 10% of log_metric requests/s.
"""

from __future__ import annotations

import argparse
import json
import statistics

from lab import SCRIPTS, TUNED, Lab, admin_password, log, sh

AIM_PCT = 10


def summarize(raw: dict) -> dict:
    """Mean of the two rounds per operation and mode, and the TLS cost in percent."""
    out: dict = {"raw": raw, "rows": []}
    for op, key in (
        ("log_metric", "rps"),
        ("log_batch", "rps"),
        ("artifact", "up_mbps"),
        ("artifact", "down_mbps"),
    ):
        values = {
            mode: statistics.mean(p[key] for p in raw["phases"] if p["op"] == op and p["mode"] == mode)
            for mode in ("plain", "tls")
        }
        cost = round(100 * (1 - values["tls"] / values["plain"]), 1) if values["plain"] else None
        label = (
            op if op != "artifact" else f"{raw['size_mb']} MB {'upload' if key == 'up_mbps' else 'download'}"
        )
        unit = "req/s" if key == "rps" else "MiB/s"
        out["rows"].append(
            {
                "what": label,
                "unit": unit,
                "plain": round(values["plain"], 1),
                "tls": round(values["tls"], 1),
                "cost_pct": cost,
            }
        )
    out["errors"] = sum(p.get("errors", 0) for p in raw["phases"])
    out["artifacts_identical"] = all(p["same"] for p in raw["phases"] if p["op"] == "artifact")
    metric = next(r for r in out["rows"] if r["what"] == "log_metric")
    out["aim_met"] = metric["cost_pct"] is not None and metric["cost_pct"] < AIM_PCT
    return out


def markdown(res: dict) -> str:
    """The section's table for results.md."""
    lines = [
        "",
        f"## TLS cost (same host, {res['raw']['clients']} clients; mean of 2 interleaved rounds each)",
        "",
        "| what | plain HTTP (loopback) | TLS (HAProxy) | TLS cost |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in res["rows"]:
        unit = row["unit"]
        lines.append(f"| {row['what']} | {row['plain']} {unit} | {row['tls']} {unit} | {row['cost_pct']}% |")
    lines.append("")
    lines.append(
        f"Errors: {res['errors']}; artifacts byte-identical: {res['artifacts_identical']}; "
        f"aim (log_metric cost < {AIM_PCT}%): {'met' if res['aim_met'] else 'not met'}."
    )
    return "\n".join(lines) + "\n"


def run(lab: Lab, args: argparse.Namespace) -> dict:  # noqa: ARG001 - the sections' common signature
    """The section on the tuned hosts' server."""
    server = TUNED["server"]
    # The password goes in front of the script's source, on stdin: never in argv or the environment.
    source = f"PASSWORD = {admin_password(server)!r}\n" + (SCRIPTS / "tls_load.py").read_text()
    log(f"tls: {args.clients} clients, plain HTTP and TLS interleaved")
    done = sh(
        "podman",
        "exec",
        "-i",
        server,
        "/opt/mlflow/bin/python",
        "-",
        str(args.clients),
        str(args.metric_requests),
        str(args.batch_requests),
        str(args.batch_size),
        str(args.artifact_mb),
        input=source,
        timeout=1800,
    )
    res = summarize(json.loads(done.stdout.strip().splitlines()[-1]))
    for row in res["rows"]:
        log(f"  {row['what']}: plain {row['plain']}, TLS {row['tls']} {row['unit']} ({row['cost_pct']}%)")
    return res
