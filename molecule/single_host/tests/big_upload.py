"""Log one big file as a run artifact through the tracking server (run inside the host).

Usage: python big_upload.py EXPERIMENT FILE
Prints one JSON line: the run id.
"""

import json
import sys

import mlflow


def main():
    mlflow.set_experiment(sys.argv[1])
    with mlflow.start_run() as run:
        mlflow.log_artifact(sys.argv[2], artifact_path="big")
    print(json.dumps({"run_id": run.info.run_id}))


if __name__ == "__main__":
    main()
