"""Read everything the hand-made server held back through the adopted service's REST API.

Runs on the adopted host with the system python (stdlib only): the manifest written before the
adoption (/root/adoption-manifest.json), the service at http://127.0.0.1:5000 with the admin's
basic-auth credentials (MLFLOW_TRACKING_USERNAME/PASSWORD). Prints one JSON object: what matched
and every difference.
"""

import base64
import hashlib
import json
import os
import sys
import urllib.parse
import urllib.request

BASE = "http://127.0.0.1:5000"
AUTH = (
    "Basic "
    + base64.b64encode(
        f"{os.environ['MLFLOW_TRACKING_USERNAME']}:{os.environ['MLFLOW_TRACKING_PASSWORD']}".encode()
    ).decode()
)


def get(endpoint: str, **params) -> bytes:
    url = f"{BASE}{endpoint}?{urllib.parse.urlencode(params)}"
    req = urllib.request.Request(url, headers={"Authorization": AUTH})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return resp.read()


def api(endpoint: str, **params) -> dict:
    return json.loads(get(f"/api/2.0/mlflow/{endpoint}", **params))


def list_all(run_id: str, path: str = "") -> dict:
    out = {}
    params = {"run_id": run_id}
    if path:
        params["path"] = path
    for entry in api("artifacts/list", **params).get("files", []):
        if entry["is_dir"]:
            out.update(list_all(run_id, entry["path"]))
        else:
            out[entry["path"]] = int(entry.get("file_size", -1))
    return out


def main(manifest_path: str) -> None:
    with open(manifest_path, encoding="utf-8") as handle:
        manifest = json.load(handle)
    problems, counts = (
        [],
        {
            "experiments": 0,
            "runs": 0,
            "metrics": 0,
            "params": 0,
            "artifacts": 0,
            "bytes": 0,
            "model_versions": 0,
        },
    )
    for exp in manifest["experiments"]:
        got = api("experiments/get", experiment_id=exp["id"])["experiment"]
        if got["name"] != exp["name"] or got["artifact_location"] != exp["artifact_location"]:
            problems.append({"experiment": exp, "got": got})
        counts["experiments"] += 1
    for run in manifest["runs"]:
        rid = run["run_id"]
        got = api("runs/get", run_id=rid)["run"]
        params = {p["key"]: p["value"] for p in got["data"].get("params", [])}
        if params != run["params"]:
            problems.append({"run": rid, "params": params, "expected": run["params"]})
        counts["params"] += len(params)
        for key, history in run["metrics"].items():
            hist = api("metrics/get-history", run_id=rid, metric_key=key)["metrics"]
            pairs = sorted([int(m.get("step", 0)), float(m["value"])] for m in hist)
            if pairs != sorted(history):
                problems.append({"run": rid, "metric": key, "got": pairs, "expected": history})
            counts["metrics"] += len(pairs)
        listed = list_all(rid)
        if set(listed) != set(run["artifacts"]):
            problems.append({"run": rid, "listed": sorted(listed), "expected": sorted(run["artifacts"])})
        for path, want in run["artifacts"].items():
            try:
                data = get("/get-artifact", path=path, run_id=rid)
            except Exception as exc:
                problems.append({"run": rid, "artifact": path, "error": f"{type(exc).__name__}: {exc}"})
                continue
            if len(data) != want["size"] or hashlib.sha256(data).hexdigest() != want["sha256"]:
                problems.append({"run": rid, "artifact": path, "bytes": len(data), "expected": want["size"]})
            counts["artifacts"] += 1
            counts["bytes"] += len(data)
        counts["runs"] += 1
    for mv in manifest["model_versions"]:
        got = api("model-versions/get", name=mv["name"], version=mv["version"])["model_version"]
        if got["run_id"] != mv["run_id"] or got["source"] != mv["source"]:
            problems.append({"model_version": mv, "got": got})
        counts["model_versions"] += 1
    print(json.dumps({"counts": counts, "problems": problems}))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/root/adoption-manifest.json")
