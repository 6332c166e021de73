"""Read runs and their artifacts back through the tracking server's REST API.

A model logged with ``mlflow.sklearn.log_model(..., name="model")`` is an MLflow 3 "logged
model": its files are not under the run's artifact root but under the model's own location,
listed and served by the logged-models endpoints. They are reported as ``model/<file>``.

Usage: python check_artifacts.py RUN_ID [RUN_ID ...]
Prints one JSON object: {run_id: {"artifact_uri": ..., "files": [...], "model_ids": [...], "mlmodel": "..."}}.
Credentials and the server come from MLFLOW_TRACKING_URI / _USERNAME / _PASSWORD.
"""

import json
import os
import sys

import requests

URI = os.environ["MLFLOW_TRACKING_URI"].rstrip("/")
AUTH = (os.environ.get("MLFLOW_TRACKING_USERNAME", ""), os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))
# The CA of the server's TLS proxy, as MLflow's own client uses it.
VERIFY = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True


def get(endpoint, **params):
    response = requests.get(f"{URI}{endpoint}", params=params, auth=AUTH, timeout=60, verify=VERIFY)
    response.raise_for_status()
    return response


def walk(run_id, path=""):
    listing = get("/api/2.0/mlflow/artifacts/list", run_id=run_id, path=path).json()
    for entry in listing.get("files", []):
        if entry["is_dir"]:
            yield from walk(run_id, entry["path"])
        else:
            yield entry["path"]


def walk_model(model_id, path=""):
    listing = get(
        f"/api/2.0/mlflow/logged-models/{model_id}/artifacts/directories", artifact_directory_path=path
    ).json()
    for entry in listing.get("files", []):
        if entry["is_dir"]:
            yield from walk_model(model_id, entry["path"])
        else:
            yield entry["path"]


def main():
    result = {}
    for run_id in sys.argv[1:]:
        run = get("/api/2.0/mlflow/runs/get", run_id=run_id).json()["run"]
        files = list(walk(run_id))
        mlmodel = None
        model_ids = []
        for output in run.get("outputs", {}).get("model_outputs", []):
            model_id = output["model_id"]
            model_ids.append(model_id)
            name = get(f"/api/2.0/mlflow/logged-models/{model_id}").json()["model"]["info"]["name"]
            model_files = list(walk_model(model_id))
            files += [f"{name}/{f}" for f in model_files]
            if "MLmodel" in model_files:
                mlmodel = get(
                    f"/ajax-api/2.0/mlflow/logged-models/{model_id}/artifacts/files",
                    artifact_file_path="MLmodel",
                ).text
        entry = {"artifact_uri": run["info"]["artifact_uri"], "files": sorted(files), "model_ids": model_ids}
        if mlmodel is None:
            path = next((f for f in files if f.endswith("MLmodel")), None)
            if path:
                mlmodel = get("/get-artifact", path=path, run_uuid=run_id).text
        if mlmodel is not None:
            entry["mlmodel"] = mlmodel
        result[run_id] = entry
    print(json.dumps(result))


if __name__ == "__main__":
    main()
