"""Artifact permission repair on 100,000 files (benchmarks/artifact_permissions/).

Its stored results.json by default (that benchmark takes ~8 minutes); with --rerun-repair, a fresh
run of bench_repair.py (--no-file-module --repeat 1) on this machine. No container is needed.
"""

from __future__ import annotations

import argparse
import json
import sys

from lab import HERE, REPO, RESULTS, Lab, log, sh

STORED = HERE / "artifact_permissions" / "results.json"
BENCH_REPAIR = HERE / "artifact_permissions" / "bench_repair.py"


def run(lab: Lab | None, args: argparse.Namespace) -> dict:
    """The stored results, or a fresh run with args.rerun_repair; lab is unused (None: no hosts)."""
    del lab  # the same signature as the other sections; this one runs on the controller
    if args.rerun_repair:
        fresh = RESULTS / "permissions.json"
        log("permissions: bench_repair.py --no-file-module --repeat 1")
        sh(
            sys.executable,
            str(BENCH_REPAIR),
            "--no-file-module",
            "--repeat",
            "1",
            "--output",
            str(fresh),
            cwd=REPO,
            timeout=1800,
        )
        data, source = json.loads(fresh.read_text()), str(fresh.relative_to(REPO))
    else:
        data, source = json.loads(STORED.read_text()), str(STORED.relative_to(REPO))
    return {"source": source, "rerun": args.rerun_repair, **data}
