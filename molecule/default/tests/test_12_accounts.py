"""Each training user has an MLflow account of its own; the admin's password never reaches a client."""

import json

from accounts import admin_password, as_admin, call, login_shell, put_secret, user_password
from stack import CLIENT, SERVER


def test_each_user_has_its_own_account(podman_host):
    client, server = podman_host(CLIENT), podman_host(SERVER)
    assert login_shell(client, "echo $MLFLOW_TRACKING_USERNAME") == "mlops"
    password = login_shell(client, "echo $MLFLOW_TRACKING_PASSWORD")
    assert password == user_password("mlops")
    assert password != admin_password()
    status, body = as_admin(server, "GET", "/get?username=mlops")
    assert status == 200, body
    assert json.loads(body)["user"]["is_admin"] is False


def test_a_training_user_cannot_make_itself_admin(podman_host):
    client = podman_host(CLIENT)
    # The user's own, valid credentials: granting the admin flag needs the admin (403, not 401).
    login_shell(
        client,
        "install -m 0600 /dev/null ~/.cred && "
        'echo "$MLFLOW_TRACKING_USERNAME:$MLFLOW_TRACKING_PASSWORD" > ~/.cred',
    )
    url = login_shell(client, "echo ${MLFLOW_TRACKING_URI%/}") + "/api/2.0/mlflow/users/update-admin"
    cert = login_shell(client, "echo $MLFLOW_TRACKING_SERVER_CERT_PATH")
    body = {"username": "mlops", "is_admin": True}
    status, text = call(client, "PATCH", url, "/home/mlops/.cred", body, cafile=cert, user="mlops")
    client.run_test("rm -f /home/mlops/.cred")
    assert status == 403, text


def test_the_admin_password_is_nowhere_on_the_client(podman_host):
    client = podman_host(CLIENT)
    put_secret(client, "/root/.needle", admin_password())
    found = client.run(
        "grep -rlsF -f /root/.needle /etc /home /root /opt /tmp /var/log /var/lib /var/tmp --exclude=.needle"
    )
    client.run_test("rm -f /root/.needle")
    assert found.stdout.strip() == "", found.stdout
