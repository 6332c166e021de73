"""The training flow with a stock MLflow client from outside the stack (this machine).

Uses only MLFLOW_TRACKING_URI / _SERVER_CERT_PATH / _USERNAME / _PASSWORD, as `.sandbox/mlflow.env`
sets them: params and metrics, a scikit-learn model logged, loaded back and used to predict,
autolog, and a 3 MB artifact downloaded byte-identical. Prints one JSON object.

Usage: python from_afar.py EXPERIMENT_NAME WORK_DIR [NAME=ADDRESS]

NAME=ADDRESS resolves the server's name to its address in this process, as a LAN's DNS would
(this machine has no resolver for the test hosts' names).
"""

import hashlib
import json
import os
import socket
import sys
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


def resolve(name: str, address: str) -> None:
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        return real(address if host == name else host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo


def main():
    experiment, work = sys.argv[1], Path(sys.argv[2])
    if len(sys.argv) > 3:
        resolve(*sys.argv[3].split("=", 1))
    mlflow.set_experiment(experiment)
    x, y = load_iris(return_X_y=True)
    blob = work / "blob.bin"
    blob.write_bytes(os.urandom(3 * 1024 * 1024))
    with mlflow.start_run() as run:
        mlflow.log_param("solver", "lbfgs")
        model = LogisticRegression(max_iter=300).fit(x, y)
        for step, value in enumerate((0.5, 0.8, model.score(x, y))):
            mlflow.log_metric("accuracy", value, step=step)
        info = mlflow.sklearn.log_model(model, name="model")
        mlflow.log_artifact(str(blob))
    loaded = mlflow.sklearn.load_model(info.model_uri)
    got = Path(
        mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path="blob.bin", dst_path=str(work / "down")
        )
    )
    mlflow.sklearn.autolog()
    with mlflow.start_run() as auto:
        LogisticRegression(max_iter=200, C=0.5).fit(x, y)
    data = MlflowClient().get_run(run.info.run_id).data
    print(
        json.dumps(
            {
                "user": os.environ["MLFLOW_TRACKING_USERNAME"],
                "params": data.params,
                "history": [m.value for m in MlflowClient().get_metric_history(run.info.run_id, "accuracy")],
                "predictions": loaded.predict(x[:3]).tolist(),
                "expected": model.predict(x[:3]).tolist(),
                "sha_uploaded": hashlib.sha256(blob.read_bytes()).hexdigest(),
                "sha_downloaded": hashlib.sha256(got.read_bytes()).hexdigest(),
                "bytes": got.stat().st_size,
                "autolog_params": sorted(MlflowClient().get_run(auto.info.run_id).data.params),
            }
        )
    )


if __name__ == "__main__":
    main()
