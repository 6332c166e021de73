"""Log small runs with an artifact, back to back, for a while; record every failure.

Usage: python client_loop.py SECONDS RESULT_JSON
Used during key rotation: no run may fail while the keys change under the server.
"""

import json
import os
import sys
import tempfile
import time
import traceback

import mlflow


def main():
    seconds, result_path = float(sys.argv[1]), sys.argv[2]
    mlflow.set_experiment("rotation-under-load")
    deadline = time.monotonic() + seconds
    runs, failures = [], []
    while time.monotonic() < deadline:
        try:
            with mlflow.start_run() as run:
                mlflow.log_metric("step", len(runs))
                with tempfile.TemporaryDirectory() as tmp:
                    path = os.path.join(tmp, "note.txt")
                    with open(path, "w") as fh:
                        fh.write(f"run {len(runs)}\n")
                    mlflow.log_artifact(path)
                runs.append(run.info.run_id)
        except Exception:
            failures.append(traceback.format_exc(limit=3))
        time.sleep(0.5)
    with open(result_path, "w") as fh:
        json.dump({"runs": runs, "failures": failures}, fh)


if __name__ == "__main__":
    main()
