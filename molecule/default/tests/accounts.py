"""Helpers for the tests of the training users' MLflow accounts: REST calls with basic auth whose
credentials stay in 0600 files on the host (never on a command line)."""

from __future__ import annotations

import json
import shlex

from stack import PROJECT_DIR, SERVER

CREDENTIALS = PROJECT_DIR / "credentials" / SERVER
USERS_API = "http://127.0.0.1:5000/api/2.0/mlflow/users"
# METHOD URL CREDFILE [BODY-JSON [CAFILE]]: print "STATUS BODY".
CALL = """
import base64, ssl, sys, urllib.error, urllib.request
method, url, cred = sys.argv[1], sys.argv[2], open(sys.argv[3]).read().strip()
body = sys.argv[4].encode() if len(sys.argv) > 4 and sys.argv[4] != "-" else None
token = base64.b64encode(cred.encode()).decode()
headers = {"Authorization": "Basic " + token, "Content-Type": "application/json"}
req = urllib.request.Request(url, data=body, method=method, headers=headers)
ctx = ssl.create_default_context(cafile=sys.argv[5] if len(sys.argv) > 5 else None)
try:
    with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
        print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
"""


def admin_password() -> str:
    return (CREDENTIALS / "admin_password").read_text().strip()


def user_password(name: str) -> str:
    return (CREDENTIALS / "users" / name).read_text().strip()


def login_shell(host, command: str, user: str = "mlops") -> str:
    """COMMAND's output in a login shell of USER (which loads ~/.mlflow/mlflow.env)."""
    return host.check_output(f"su - {user} -c {shlex.quote(command)}")


def put_secret(host, path: str, text: str, owner: str = "root") -> None:
    host.run_test(f"install -m 0600 -o {owner} /dev/null {path}")
    host.check_output(f"cat > {path} <<'EOF'\n{text}\nEOF")


def call(host, method: str, url: str, cred_file: str, body=None, cafile: str = "", user: str = "root"):
    """(status, body text) of METHOD URL as the credentials in CRED_FILE, run as USER on HOST."""
    # The script is no secret: it goes in argv, so that no file in the sticky /tmp is written by
    # root and owned by USER (fs.protected_regular refuses exactly that, even to root).
    args = [method, url, cred_file, json.dumps(body) if body is not None else "-"] + (
        [cafile] if cafile else []
    )
    out = host.check_output(f"runuser -u {user} -- python3 -c {shlex.quote(CALL)} {shlex.join(args)}")
    status, _, text = out.partition(" ")
    return int(status), text


def as_admin(server, method: str, path: str, body=None):
    """METHOD USERS_API/PATH on the tracking server as the admin."""
    put_secret(server, "/root/.admin-cred", f"admin:{admin_password()}")
    try:
        return call(server, method, USERS_API + path, "/root/.admin-cred", body)
    finally:
        server.run_test("rm -f /root/.admin-cred")


def can_log_in(server, name: str, password: str) -> bool:
    """Whether NAME:PASSWORD authenticates on the server (GET users/current)."""
    put_secret(server, "/root/.user-cred", f"{name}:{password}")
    try:
        return call(server, "GET", USERS_API + "/current", "/root/.user-cred")[0] == 200
    finally:
        server.run_test("rm -f /root/.user-cred")
