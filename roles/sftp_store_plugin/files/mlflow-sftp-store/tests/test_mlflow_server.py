"""End to end: ``mlflow server --artifacts-destination sftp://...`` with this plugin installed."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pytest
from conftest import ClientHome, MlflowServer


def test_mlflow_server_proxied_artifacts_over_sftp(
    mlflow_server: MlflowServer, ready_home: ClientHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow import MlflowClient

    url, remote = mlflow_server.url, mlflow_server.remote
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    mlflow.set_tracking_uri(url)
    client = MlflowClient(url)
    exp_id = client.create_experiment("sftp-e2e")
    run = client.create_run(exp_id)
    run_id = run.info.run_id
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")

    payload = os.urandom(3 * 1024 * 1024 + 17)
    src = tmp_path / "upload"
    src.mkdir()
    (src / "weights.bin").write_bytes(payload)
    (src / "nested").mkdir()
    (src / "nested" / "notes.txt").write_text("nested artifact\n")
    client.log_artifact(run_id, str(src / "weights.bin"), "model")
    client.log_artifacts(run_id, str(src / "nested"), "model/extra")
    client.set_terminated(run_id)

    stored = remote / exp_id / run_id / "artifacts" / "model" / "weights.bin"
    assert stored.read_bytes() == payload  # really landed on the SFTP side

    listing = {(f.path, f.is_dir, f.file_size) for f in client.list_artifacts(run_id, "model")}
    assert listing == {("model/weights.bin", False, len(payload)), ("model/extra", True, None)}

    out = tmp_path / "download"
    out.mkdir()
    got = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model", dst_path=str(out)))
    assert (got / "weights.bin").read_bytes() == payload
    assert (got / "extra" / "notes.txt").read_text() == "nested artifact\n"

    # The server's pooled SSH sessions die (artifact host reboot, network cut): next calls still work.
    assert ready_home.sshd.kill_sessions() >= 1
    assert [f.path for f in client.list_artifacts(run_id, "model/extra")] == ["model/extra/notes.txt"]
    assert ready_home.sshd.kill_sessions() >= 1
    client.log_artifact(run_id, str(src / "nested" / "notes.txt"), "after-drop")
    assert (remote / exp_id / run_id / "artifacts" / "after-drop" / "notes.txt").exists()


def test_mlflow_server_logs_batches_through_the_bulk_store(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    """The real server picks the package's sqlite store, and a 1,000-metric REST batch with a NaN and
    a repeated metric reads back as MLflow stores it."""
    import json

    url = mlflow_server.url

    def call(path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{url}/api/2.0/mlflow/{path}", data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"{}")

    exp_id = call("experiments/create", {"name": "bulk"})["experiment_id"]
    run_id = call("runs/create", {"experiment_id": exp_id})["run"]["info"]["run_id"]
    metrics = [{"key": f"m{j % 10}", "value": float(j), "timestamp": 1000 + j, "step": j} for j in range(998)]
    metrics += [{"key": "m0", "value": "NaN", "timestamp": 5000, "step": 5000}, metrics[0]]
    call("runs/log-batch", {"run_id": run_id, "metrics": metrics})
    call("runs/log-batch", {"run_id": run_id, "metrics": metrics[:2]})  # already stored: stock recovery

    history = call(f"metrics/get-history?run_id={run_id}&metric_key=m0")["metrics"]
    assert len(history) == 100 + 1  # 0, 10, ..., 990, then the NaN; the repeats stored once
    latest = {m["key"]: m for m in call(f"runs/get?run_id={run_id}")["run"]["data"]["metrics"]}
    assert latest["m0"]["value"] == "NaN" and latest["m0"]["step"] == 5000
    assert latest["m7"] == {"key": "m7", "value": 997.0, "timestamp": 1997, "step": 997}
    assert "SQLite tracking store with bulk metric writes" in (tmp_path / "mlflow-server.log").read_text()
