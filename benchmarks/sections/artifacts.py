"""Artifact throughput: a log_artifact and its download through the provisioned server.

The MLflow client from the controller, proxied by the server to the artifact host over SFTP, against
OpenSSH `sftp -b` from the controller to the artifact host; interleaved rounds, checksums verified.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

from lab import CA_FILE, TUNED, Lab, admin_password, log, sh

REMOTE_DIR = "/var/tmp/bench-sftp"  # noqa: S108 - on the throwaway artifact host


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@contextlib.contextmanager
def environ(**values: str) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def make_payload(path: Path, megabytes: int) -> str:
    """Write megabytes MiB of random data to path; its SHA-256."""
    with open(path, "wb") as fh:
        for _ in range(megabytes):
            fh.write(os.urandom(1 << 20))
    return sha256(path)


def rounds_of(lab: Lab, args: argparse.Namespace, password: str, payload: Path, digest: str) -> list[dict]:
    """args.artifact_rounds rounds, each an MLflow upload and download, then the same with sftp."""
    server, artifact = TUNED["server"], TUNED["artifact"]
    down = lab.tmp / "down"
    sftp = ["sftp", *lab.ssh_opts, "-b", "-", f"root@{lab.ips[artifact]}"]

    def sftp_batch(commands: str) -> float:
        """Seconds one `sftp -b -` command takes with these batch commands."""
        t = time.perf_counter()
        sh(*sftp, input=commands, timeout=600)
        return time.perf_counter() - t

    with environ(
        MLFLOW_TRACKING_USERNAME="admin",
        MLFLOW_TRACKING_PASSWORD=password,
        MLFLOW_DISABLE_TELEMETRY="true",
        MLFLOW_HTTP_REQUEST_TIMEOUT="600",
        MLFLOW_TRACKING_SERVER_CERT_PATH=str(CA_FILE),
    ):
        # Imported here only: MLflow takes seconds to import, and only this section uses it.
        from mlflow.tracking import MlflowClient  # noqa: PLC0415

        # Through the TLS proxy, as clients reach it (MLflow itself listens on loopback).
        client = MlflowClient(f"https://{lab.ips[server]}")
        exp = client.create_experiment(f"bench-artifacts-{int(time.time())}")
        run_id = client.create_run(exp).info.run_id
        rounds = []
        for rnd in range(args.artifact_rounds):
            log(f"artifacts: round {rnd + 1}/{args.artifact_rounds}")
            r: dict = {}
            t = time.perf_counter()
            client.log_artifact(run_id, str(payload), f"round{rnd}")
            r["mlflow_up_s"] = time.perf_counter() - t
            shutil.rmtree(down, ignore_errors=True)
            down.mkdir()
            t = time.perf_counter()
            got = client.download_artifacts(run_id, f"round{rnd}/{payload.name}", str(down))
            r["mlflow_down_s"] = time.perf_counter() - t
            r["mlflow_ok"] = sha256(Path(got)) == digest
            r["sftp_handshake_s"] = sftp_batch("pwd\n")
            r["sftp_up_s"] = sftp_batch(f"put {payload} {REMOTE_DIR}/round{rnd}.bin\n")
            (down / "sftp.bin").unlink(missing_ok=True)
            r["sftp_down_s"] = sftp_batch(f"get {REMOTE_DIR}/round{rnd}.bin {down / 'sftp.bin'}\n")
            r["sftp_ok"] = sha256(down / "sftp.bin") == digest
            rounds.append({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()})
            log(f"  {rounds[-1]}")
    return rounds


def summary(size_mb: int, rounds: list[dict]) -> dict:
    """Throughputs (MiB/s) from the rounds' median times, and the proxied / sftp ratios."""

    def med(key: str) -> float:
        """Median of one timing over the rounds."""
        return statistics.median(r[key] for r in rounds)

    mb = float(size_mb)  # MiB
    hs = med("sftp_handshake_s")
    out = {
        "size_mb": size_mb,
        "rounds": rounds,
        "mlflow_up_mbps": round(mb / med("mlflow_up_s"), 1),
        "mlflow_down_mbps": round(mb / med("mlflow_down_s"), 1),
        "sftp_up_mbps": round(mb / med("sftp_up_s"), 1),
        "sftp_down_mbps": round(mb / med("sftp_down_s"), 1),
        # Without the connection set-up (an empty batch's time), as the plugin's own benchmark does.
        "sftp_up_mbps_net": round(mb / max(med("sftp_up_s") - hs, 1e-3), 1),
        "sftp_down_mbps_net": round(mb / max(med("sftp_down_s") - hs, 1e-3), 1),
        "checksums_ok": all(r["mlflow_ok"] and r["sftp_ok"] for r in rounds),
    }
    out["up_ratio"] = round(out["mlflow_up_mbps"] / out["sftp_up_mbps"], 2)
    out["up_ratio_net"] = round(out["mlflow_up_mbps"] / out["sftp_up_mbps_net"], 2)
    out["down_ratio"] = round(out["mlflow_down_mbps"] / out["sftp_down_mbps"], 2)
    return out


def run(lab: Lab, args: argparse.Namespace) -> dict:
    """The section on the tuned hosts: a random args.artifact_mb MiB file, args.artifact_rounds rounds."""
    server, artifact = TUNED["server"], TUNED["artifact"]
    payload = lab.tmp / "payload.bin"
    digest = make_payload(payload, args.artifact_mb)
    password = admin_password(server)
    lab.ssh(artifact, f"mkdir -p {REMOTE_DIR}")
    rounds = rounds_of(lab, args, password, payload, digest)
    lab.ssh(artifact, f"rm -rf {REMOTE_DIR}", check=False)
    return summary(args.artifact_mb, rounds)
