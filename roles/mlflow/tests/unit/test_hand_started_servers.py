"""Unit tests for plugins/module_utils/hand_started_servers.py (used by mlflow_hand_started_info and
mlflow_hand_started) and the /proc reading it shares with the doctor (mlflow_processes.py).

The command lines and database URIs are the user's notes' (shared/seed/mlflow-tracking-notes.md).
Run: pytest roles/mlflow/tests/unit
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from ansible_collections.mlops.mlflow.plugins.module_utils import hand_started_servers as hand
from ansible_collections.mlops.mlflow.plugins.module_utils import mlflow_processes as procs


@pytest.mark.parametrize(
    ("argv", "args"),
    [
        (["/root/venv/bin/python3", "/root/venv/bin/mlflow", "server", "-h", "0.0.0.0"], ["-h", "0.0.0.0"]),
        (["mlflow", "server"], []),
        (["python3", "-m", "mlflow", "server", "--port", "5001"], ["--port", "5001"]),
        (["/opt/mlflow/bin/mlflow", "db", "upgrade", "sqlite:///x.db"], None),
        (["python3", "train.py", "mlflow", "server"], None),
        (["gunicorn", "-b", "0.0.0.0:5000", "mlflow.server:app"], None),
    ],
)
def test_server_args(argv, args):
    assert procs.server_args(argv) == args


@pytest.mark.parametrize(
    ("uri", "cwd", "path"),
    [
        # The notes' URI: three slashes, so relative to where the server was started.
        ("sqlite:///home/mlops/mlflow/mlflow.db", "/", "/home/mlops/mlflow/mlflow.db"),
        ("sqlite:///home/mlops/mlflow/mlflow.db", "/root", "/root/home/mlops/mlflow/mlflow.db"),
        ("sqlite:///mlflow.db", "/root/tracking-server", "/root/tracking-server/mlflow.db"),
        ("sqlite:////var/lib/mlflow/mlflow.db", "/tmp", "/var/lib/mlflow/mlflow.db"),
        ("sqlite:///:memory:", "/", None),
        ("postgresql://u:p@db/mlflow", "/", None),
    ],
)
def test_sqlite_path(uri, cwd, path):
    assert procs.sqlite_path(uri, cwd) == path


def test_options():
    args = ["-h", "0.0.0.0", "--port=5001", "--backend-store-uri", "sqlite:///mlflow.db", "--serve-artifacts"]
    conf = procs.parse_server_args(args)
    assert conf == {"host": "0.0.0.0", "port": "5001", "backend": "sqlite:///mlflow.db", "serve": True}
    assert "workers" not in conf


def test_find_and_stop_a_fake_server(tmp_path):
    """A process whose command line is `.../mlflow server ...`, started like the notes' nohup."""
    fake = tmp_path / "mlflow"
    fake.write_text("import time\ntime.sleep(120)\n")
    proc = subprocess.Popen(
        [sys.executable, str(fake), "server", "--backend-store-uri", "sqlite:///mlflow.db", "-p", "5099"],
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        for _ in range(50):
            found = [s for s in hand.find_servers("mlflow.service") if s["pid"] == proc.pid]
            if found:
                break
            time.sleep(0.1)
        assert found, "the fake server was not found"
        server = found[0]
        assert server["port"] == 5099
        assert server["sqlite_path"] == str(tmp_path / "mlflow.db")
        assert server["cwd"] == str(tmp_path)
        assert proc.pid in hand.stop([proc.pid], timeout=5)
        assert proc.wait(timeout=10) is not None
    finally:
        if proc.poll() is None:
            proc.kill()
