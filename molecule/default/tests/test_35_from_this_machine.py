"""The training flow from this machine, not from a host of the stack: a stock MLflow client (the
project's venv) over HTTPS through the server's proxy, verified with the toolkit's CA, as one
training user with that user's own credential, exactly the settings `.sandbox/mlflow.env` gives.
Before test_40 switches the stack to direct artifact mode (where clients reach SFTP themselves)."""

import json
import os
import subprocess
import sys

from accounts import user_password
from stack import FILES, PROJECT_DIR, SERVER


def server_address() -> str:
    out = subprocess.run(
        ["podman", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", SERVER],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.split()[0]


def test_training_from_this_machine_over_https_as_a_training_user(tmp_path):
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"https://{SERVER}",
        "MLFLOW_TRACKING_SERVER_CERT_PATH": str(PROJECT_DIR / "credentials" / "ca" / "ca.crt"),
        "MLFLOW_TRACKING_USERNAME": "mlops",
        "MLFLOW_TRACKING_PASSWORD": user_password("mlops"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    result = subprocess.run(
        [
            sys.executable,
            str(FILES / "from_afar.py"),
            "from-this-machine",
            str(tmp_path),
            f"{SERVER}={server_address()}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["user"] == "mlops"
    assert got["params"] == {"solver": "lbfgs"}
    assert len(got["history"]) == 3
    assert got["predictions"] == got["expected"]
    assert got["bytes"] == 3 * 1024 * 1024
    assert got["sha_downloaded"] == got["sha_uploaded"]
    assert "max_iter" in got["autolog_params"]
