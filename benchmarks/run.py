#!/usr/bin/env python3
"""The toolkit's benchmarks, in one run: `make bench` (or `.venv/bin/python benchmarks/run.py`).

Sections (``--only`` selects some, comma-separated; default all):

  provisioning  wall time of a cold `site.yml` converge on fresh hosts and of the idempotent
                re-run, with the project's ansible.cfg (pipelining, ControlPersist, fact cache)
                and with a baseline config (no pipelining, no ControlPersist, memory fact
                cache) on a second set of fresh hosts; and what one task costs with nothing
                to do (a module, a controller-only and a skipped task), to explain the re-run
  tracking      8 concurrent REST clients doing log_metric and log_batch against the
                provisioned server and against a server started by hand as in the team's notes
                (`mlflow server -h 0.0.0.0 --backend-store-uri sqlite:///mlflow.db ...`, root,
                same venv, same host, other port): requests/s, p50/p99, errors, server RSS
  artifacts     a 100 MB log_artifact and its download through the provisioned server (MLflow
                client, proxied to SFTP) against OpenSSH `sftp` to the artifact host
  tls           log_metric, log_batch and a 100 MB artifact through the TLS proxy (HAProxy) beside
                the same on plain HTTP to MLflow on the server's loopback, interleaved, in one run
  permissions   the artifact tree repair on 100,000 files (benchmarks/artifact_permissions/):
                its stored results.json, or a fresh run with --rerun-repair
  strategy      (only when asked: --only strategy) issue #17: a cold converge with the share of
                the MLflow install task, the idempotent re-run with ansible.cfg and with
                ansible-mitogen.cfg (Mitogen) alternately, pip against uv installing MLflow on a
                bench host, and a cold converge + re-runs under Mitogen on fresh hosts

The hosts are rootful Podman systemd containers (`bench-*`, network `mlops-bench`) reached over
real SSH by their bridge address, so that pipelining and ControlPersist matter. They, the
network, the throwaway key and the temporary inventories are removed at the end, also on
failure (unless --keep). Results: benchmarks/results/results.json and results.md; Ansible logs
in .cache/logs/bench-*.log. Timings are reported, never asserted: each target is "met" or
"not met" in the results.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import sys
import time
from pathlib import Path

import report
from lab import RESULTS, Lab, loadavg, log, machine
from sections import artifacts, permissions, provisioning, strategy, tls, tracking

SECTIONS = ("provisioning", "tracking", "artifacts", "tls", "permissions", "strategy")
# What runs without --only: strategy (two more cold converges) only when asked.
DEFAULT_SECTIONS = ("provisioning", "tracking", "artifacts", "tls", "permissions")


def parse_args() -> tuple[argparse.Namespace, set[str]]:
    """The command line: the options, and the set of sections to run."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only",
        default=",".join(DEFAULT_SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all but strategy)",
    )
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--metric-requests", type=int, default=200, help="log_metric requests per client")
    parser.add_argument("--batch-requests", type=int, default=10, help="log_batch requests per client")
    parser.add_argument(
        "--batch-size", type=int, default=1000, help="metrics per log_batch (MLflow's max: 1000)"
    )
    parser.add_argument(
        "--phase-seconds",
        type=float,
        default=60,
        help="stop sending after this long per load phase (0: no limit)",
    )
    parser.add_argument("--artifact-mb", type=int, default=100)
    parser.add_argument("--artifact-rounds", type=int, default=5)
    parser.add_argument(
        "--no-stock", action="store_true", help="skip the extra re-run with Ansible's stock ssh_args"
    )
    parser.add_argument(
        "--rerun-repair",
        action="store_true",
        help="run bench_repair.py (--no-file-module --repeat 1) instead of using its stored results",
    )
    parser.add_argument(
        "--strategy-rounds",
        type=int,
        default=2,
        help="strategy: re-runs with each of ansible.cfg and Mitogen",
    )
    parser.add_argument(
        "--install-rounds", type=int, default=1, help="strategy: rounds of the pip / uv install timing"
    )
    parser.add_argument("--keep", action="store_true", help="leave the containers and network up (debugging)")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse running hosts left by --keep (no cold converge)"
    )
    parser.add_argument("--output", default=str(RESULTS / "results.json"))
    args = parser.parse_args()
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    if only - set(SECTIONS):
        parser.error(f"unknown section(s): {', '.join(sorted(only - set(SECTIONS)))}")
    if os.geteuid() != 0:
        parser.error("run as root (rootful Podman containers reached by their bridge address)")
    return args, only


def main() -> int:
    """Run the sections asked for, then write results.json and results.md (also after errors)."""
    args, only = parse_args()
    # A SIGTERM (make interrupted, CI timeout) still runs the clean-up in the finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    res: dict = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["benchmarks/run.py", *sys.argv[1:]]),
        "sections": [s for s in SECTIONS if s in only],
        "machine": machine(),
        "errors": [],
    }
    log(f"sections: {', '.join(res['sections'])}; load average {res['machine']['load_before']}")
    try:
        if only & {"provisioning", "tracking", "artifacts", "tls"}:
            run_hosts(res, only, args)
    except Exception as exc:  # noqa: BLE001 - reported in the results, the rest still written
        res["errors"].append(f"{type(exc).__name__}: {exc}")
        log(f"ERROR: {exc}")
    if "permissions" in only:
        try:
            res["permissions"] = permissions.run(None, args)
        except Exception as exc:  # noqa: BLE001
            res["errors"].append(f"permissions: {type(exc).__name__}: {exc}")
    if "strategy" in only:
        try:
            # Hosts of its own (fresh, cold converges), after any other section's are gone.
            with Lab(args.keep) as lab:
                res["strategy"] = strategy.run(lab, args)
        except Exception as exc:  # noqa: BLE001
            res["errors"].append(f"strategy: {type(exc).__name__}: {exc}")
            log(f"ERROR strategy: {exc}")
    res["machine"]["load_after"] = loadavg()
    res["total_s"] = round(time.perf_counter() - started, 1)
    res["targets"] = report.targets(res)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    md = report.markdown(res) + (tls.markdown(res["tls"]) if "tls" in res else "")
    out.with_suffix(".md").write_text(md)
    print(md)
    log(f"written: {out} and {out.with_suffix('.md')}")
    return 1 if res["errors"] else 0


def run_hosts(res: dict, only: set[str], args: argparse.Namespace) -> None:
    """Everything that needs the containers, inside one Lab (removed at the end, also on failure)."""
    with Lab(args.keep, args.reuse) as lab:
        # The tuned converge also provisions the hosts the throughput benchmarks use.
        prov = provisioning.run_tuned(lab)
        if "provisioning" in only and not lab.reused:
            res["provisioning"] = prov
        for name, section in (("tracking", tracking), ("artifacts", artifacts), ("tls", tls)):
            if name in only:
                try:
                    res[name] = section.run(lab, args)
                except Exception as exc:  # noqa: BLE001 - the next sections still run
                    res["errors"].append(f"{name}: {type(exc).__name__}: {exc}")
                    log(f"ERROR {name}: {exc}")
        if "provisioning" in only:
            provisioning.run_baseline(lab, args, prov)
        for p in prov.values():
            if isinstance(p, dict):
                p.pop("inventory", None)


if __name__ == "__main__":
    sys.exit(main())
