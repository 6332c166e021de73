"""Training as in the user's notes, against their hand-started server (MLFLOW_TRACKING_URI).

Run as root with /root/venv (MLflow 2.x, pysftp): the artifacts go straight to SFTP as mlops,
with root's ~/.ssh/id_rsa. Small stand-ins for the notes' Keras model: a pyfunc model, metric
histories, text and binary artifacts, a registered model.
"""

import os
import random
from pathlib import Path

import mlflow
from mlflow.pyfunc import PythonModel

ARTIFACT_URI = os.environ["HAND_URI"]


class Threshold(PythonModel):
    def predict(self, context, model_input, params=None):
        return [1 if x > 0.5 else 0 for x in model_input["score"]]


def log_files(tmp: Path, tag: str) -> None:
    data = tmp / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "vocab.txt").write_text("\n".join(f"word{i}" for i in range(2000)), encoding="utf-8")
    (data / "weights.bin").write_bytes(random.randbytes(300_000))
    mlflow.log_artifacts(str(data), artifact_path="data")
    (tmp / f"summary-{tag}.txt").write_text(f"테스트 정확도 {tag}\n", encoding="utf-8")
    mlflow.log_artifact(str(tmp / f"summary-{tag}.txt"))


def main() -> None:
    random.seed(9)
    tmp = Path("/root/hand-train")
    tmp.mkdir(exist_ok=True)

    # Version 1) Server - manually: the experiment gets the sftp:// artifact location.
    name = "classfication"
    if mlflow.get_experiment_by_name(name) is None:
        mlflow.create_experiment(name=name, artifact_location=ARTIFACT_URI)
    mlflow.set_experiment(name)
    with mlflow.start_run(run_name="gru-1"):
        mlflow.log_param("env", os.environ["MLFLOW_TRACKING_URI"])
        mlflow.log_param("train num", 25000)
        mlflow.log_param("class", {0: "negative", 1: "positive"})
        for step in range(15):
            mlflow.log_metric("val_loss", 0.7 - step * 0.03, step=step)
        mlflow.log_metric("accuracy", 0.8734)
        log_files(tmp, "gru-1")
        mlflow.pyfunc.log_model("model", python_model=Threshold(), registered_model_name="imdb-gru")
    with mlflow.start_run(run_name="gru-2"):
        mlflow.log_param("env", "second")
        mlflow.log_metric("accuracy", 0.8811)
        log_files(tmp, "gru-2")

    # Version 2) Server - Autolog: an experiment without artifact_location (default root).
    mlflow.set_experiment("classfication-auto")
    with mlflow.start_run(run_name="auto-1"):
        mlflow.log_param("epochs", 15)
        mlflow.log_metric("acc", 0.91)
        (tmp / "events.out.tfevents").write_bytes(random.randbytes(50_000))
        mlflow.log_artifact(str(tmp / "events.out.tfevents"), artifact_path="tensorboard_logs")

    Path("/root/hand_train.done").write_text("ok\n", encoding="utf-8")


if __name__ == "__main__":
    main()
