"""A training script in the style of the team's notes (scikit-learn instead of TensorFlow).

Runs on a client with MLFLOW_TRACKING_URI / MLFLOW_TRACKING_USERNAME / _PASSWORD from
~/.mlflow/mlflow.env. Prints one JSON line: the run ids it made.

Usage: python train.py EXPERIMENT_NAME [ARTIFACT_LOCATION]
"""

import json
import os
import sys

import mlflow
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split


def fetch_logged_data(run_id):
    return MlflowClient().get_run(run_id).to_dictionary()["data"]


def main():
    experiment_name = sys.argv[1]
    artifact_location = sys.argv[2] if len(sys.argv) > 2 else None
    if mlflow.get_experiment_by_name(experiment_name) is None:
        mlflow.create_experiment(name=experiment_name, artifact_location=artifact_location)
    mlflow.set_experiment(experiment_name)

    x, y = load_iris(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=7)
    run_ids = []

    # Version 1: manual logging.
    with mlflow.start_run() as run:
        mlflow.log_param("env", os.environ.get("MLFLOW_TRACKING_URI", "local"))
        mlflow.log_param("class", {0: "setosa", 1: "versicolor", 2: "virginica"})
        mlflow.log_param("train example", list(x_train[0]))
        mlflow.log_param("train num", len(x_train))
        model = LogisticRegression(max_iter=300).fit(x_train, y_train)
        mlflow.log_metric("accuracy", model.score(x_test, y_test))
        mlflow.sklearn.log_model(model, name="model")
        run_ids.append(run.info.run_id)

    # Version 2: autolog inside start_run.
    mlflow.sklearn.autolog()
    with mlflow.start_run() as run:
        LogisticRegression(max_iter=200, C=0.5).fit(x_train, y_train)
        run_ids.append(run.info.run_id)
    assert fetch_logged_data(run_ids[-1])["params"], "autolog logged no params"
    print(json.dumps({"experiment": experiment_name, "run_ids": run_ids}))


if __name__ == "__main__":
    main()
