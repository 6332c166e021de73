"""Read runs and their artifacts back through the tracking server's REST API.

Usage: python check_artifacts.py RUN_ID [RUN_ID ...]
Prints one JSON object: {run_id: {"artifact_uri": ..., "files": [...], "mlmodel": "..."}}.
Credentials and the server come from MLFLOW_TRACKING_URI / _USERNAME / _PASSWORD.
"""

import json
import os
import sys

import requests

URI = os.environ["MLFLOW_TRACKING_URI"].rstrip("/")
AUTH = (os.environ.get("MLFLOW_TRACKING_USERNAME", ""), os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))


def get(endpoint, **params):
    response = requests.get(f"{URI}{endpoint}", params=params, auth=AUTH, timeout=60)
    response.raise_for_status()
    return response


def walk(run_id, path=""):
    listing = get("/api/2.0/mlflow/artifacts/list", run_id=run_id, path=path).json()
    for entry in listing.get("files", []):
        if entry["is_dir"]:
            yield from walk(run_id, entry["path"])
        else:
            yield entry["path"]


def main():
    result = {}
    for run_id in sys.argv[1:]:
        run = get("/api/2.0/mlflow/runs/get", run_id=run_id).json()["run"]
        files = sorted(walk(run_id))
        entry = {"artifact_uri": run["info"]["artifact_uri"], "files": files}
        mlmodel = next((f for f in files if f.endswith("MLmodel")), None)
        if mlmodel:
            entry["mlmodel"] = get("/get-artifact", path=mlmodel, run_uuid=run_id).text
        result[run_id] = entry
    print(json.dumps(result))


if __name__ == "__main__":
    main()
