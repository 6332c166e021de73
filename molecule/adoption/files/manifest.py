"""What the hand-made server holds, written to a JSON file before the adoption.

Experiments, runs (params, metric histories), registered model versions from the server
(MLFLOW_TRACKING_URI), and every artifact file's size and sha256 read from the artifact tree on
disk (the artifact host is this host; some files are root's and unreadable over SFTP as mlops).
"""

import hashlib
import json
import os
import sys
from urllib.parse import urlsplit

from mlflow.tracking import MlflowClient


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(out: str) -> None:
    client = MlflowClient()
    manifest = {"experiments": [], "runs": [], "model_versions": []}
    for exp in client.search_experiments():
        manifest["experiments"].append(
            {"id": exp.experiment_id, "name": exp.name, "artifact_location": exp.artifact_location}
        )
        for run in client.search_runs([exp.experiment_id]):
            root = urlsplit(run.info.artifact_uri).path
            files = {}
            for dirpath, _dirs, names in os.walk(root):
                for name in names:
                    full = os.path.join(dirpath, name)
                    files[os.path.relpath(full, root)] = {
                        "size": os.path.getsize(full),
                        "sha256": sha256(full),
                    }
            manifest["runs"].append(
                {
                    "run_id": run.info.run_id,
                    "experiment_id": exp.experiment_id,
                    "run_name": run.info.run_name,
                    "artifact_uri": run.info.artifact_uri,
                    "params": run.data.params,
                    "metrics": {
                        key: [[m.step, m.value] for m in client.get_metric_history(run.info.run_id, key)]
                        for key in run.data.metrics
                    },
                    "artifacts": files,
                }
            )
    for rm in client.search_registered_models():
        for mv in client.search_model_versions(f"name='{rm.name}'"):
            manifest["model_versions"].append(
                {"name": mv.name, "version": mv.version, "run_id": mv.run_id, "source": mv.source}
            )
    manifest["database_sha256"] = sha256("/home/mlops/mlflow/mlflow.db")
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
