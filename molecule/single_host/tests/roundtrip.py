"""Log a run with an artifact through the server and read it back (run inside the host).

Usage: python roundtrip.py EXPERIMENT
"""

import filecmp
import json
import os
import sys
import tempfile

import mlflow


def main():
    mlflow.set_experiment(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "blob.bin")
        with open(src, "wb") as fh:
            fh.write(os.urandom(1024 * 1024))
        with mlflow.start_run() as run:
            mlflow.log_param("layers", [64, 32])
            mlflow.log_metric("loss", 0.25)
            mlflow.log_artifact(src, artifact_path="data")
        back = mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path="data/blob.bin", dst_path=tmp + "/dl"
        )
        print(
            json.dumps(
                {
                    "run_id": run.info.run_id,
                    "artifact_uri": run.info.artifact_uri,
                    "same": filecmp.cmp(src, back, shallow=False),
                }
            )
        )


if __name__ == "__main__":
    main()
