#!/usr/bin/python
"""Make an MLflow basic-auth user exist with a given password and no admin flag, or not exist."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mlflow_user
short_description: Manage one user of MLflow's basic-auth app through its REST API
description:
  - Checks and fixes in one run, through the tracking server's own REST API (C(/api/2.0/mlflow/users/...)).
  - C(state=present) first logs in as the user (C(users/current)); when that works and the user is not an
    admin, nothing changes. Otherwise, as the admin, it creates the user, or sets its password, and
    removes the admin flag.
  - C(state=absent) deletes the user when it exists.
  - Passwords travel in the module's arguments (on the connection's stdin) and in HTTP request bodies and
    headers, never on a command line or in an environment. Run it where the server listens (e.g. delegated
    to the tracking server, against its loopback address), so the admin password never reaches a client.
  - Supports check mode. In check mode a server that cannot be reached yet (the preview of a first run)
    is reported as a change.
options:
  tracking_uri:
    description: Base URL of the tracking server, e.g. C(http://127.0.0.1:5000).
    type: str
    required: true
  admin_username:
    description: An MLflow admin.
    type: str
    required: true
  admin_password:
    description: The admin's password.
    type: str
    required: true
  name:
    description: The user's name.
    type: str
    required: true
  password:
    description: The user's password (required with C(state=present)).
    type: str
  state:
    description: Whether the user exists.
    type: str
    choices: [present, absent]
    default: present
  ca_path:
    description: CA bundle that verifies the server's certificate (https URLs).
    type: path
  timeout:
    description: Seconds per request.
    type: int
    default: 30
author: mlops-tracking
"""

EXAMPLES = r"""
- name: Give alice her own MLflow account
  mlops.mlflow.mlflow_user:
    tracking_uri: http://127.0.0.1:5000
    admin_username: admin
    admin_password: "{{ admin_password }}"
    name: alice
    password: "{{ alice_password }}"
  delegate_to: mlflow-server
  no_log: true
"""

RETURN = r"""
created:
  description: Whether the user was created.
  type: bool
  returned: always
password_set:
  description: Whether an existing user's password was set.
  type: bool
  returned: always
admin_removed:
  description: Whether the user's admin flag was removed.
  type: bool
  returned: always
deleted:
  description: Whether the user was deleted.
  type: bool
  returned: always
"""

import json
from urllib.error import HTTPError
from urllib.parse import urlencode

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

API = "/api/2.0/mlflow/users"


class Api:
    """Requests to one MLflow server, as one user or another."""

    def __init__(self, module: AnsibleModule):
        self.module = module
        self.base = module.params["tracking_uri"].rstrip("/") + API
        self.admin = (module.params["admin_username"], module.params["admin_password"])

    def call(
        self, method: str, path: str, auth: tuple[str, str], body: dict | None = None
    ) -> tuple[int, dict]:
        """(HTTP status, decoded JSON body or {}) of METHOD on API/PATH as AUTH."""
        data = json.dumps(body).encode() if body is not None else None
        try:
            response = open_url(
                self.base + path,
                method=method,
                data=data,
                headers={"Content-Type": "application/json"} if data else None,
                url_username=auth[0],
                url_password=auth[1],
                force_basic_auth=True,
                ca_path=self.module.params["ca_path"],
                timeout=self.module.params["timeout"],
            )
            status, raw = response.status, response.read()
        except HTTPError as err:
            status, raw = err.code, err.read()
        except OSError as err:
            if self.module.check_mode:
                # A preview of a first run: the server that would answer is not there yet.
                self.module.exit_json(changed=True, unreachable=True, msg=f"MLflow not reachable yet: {err}")
            self.module.fail_json(msg=f"cannot reach MLflow at {self.base}: {err}")
        try:
            return status, json.loads(raw or b"{}")
        except ValueError:
            return status, {"text": raw.decode(errors="replace")[:300]}

    def admin_call(self, method: str, path: str, body: dict | None = None, ok=(200,)) -> tuple[int, dict]:
        """METHOD on API/PATH as the admin; fails the module on an unexpected status."""
        status, data = self.call(method, path, self.admin, body)
        if status == 401:
            self.module.fail_json(
                msg="MLflow refused the admin's credentials (check admin_username/admin_password)"
            )
        if status not in ok:
            self.module.fail_json(msg=f"MLflow answered {status} to {method} {API}{path}: {data}")
        return status, data

    def exists(self, name: str) -> bool:
        """Whether NAME is a user (asked as the admin)."""
        status, _ = self.admin_call("GET", "/get?" + urlencode({"username": name}), ok=(200, 404))
        return status == 200


def ensure_absent(module: AnsibleModule, api: Api, result: dict) -> None:
    """Delete the user when it exists."""
    if api.exists(module.params["name"]):
        result.update(changed=True, deleted=True)
        if not module.check_mode:
            api.admin_call("DELETE", "/delete", {"username": module.params["name"]})


def ensure_present(module: AnsibleModule, api: Api, result: dict) -> None:
    """Make the user exist with its password and without the admin flag."""
    name, password = module.params["name"], module.params["password"]
    status, me = api.call("GET", "/current", (name, password))
    if status == 200:
        is_admin = bool(me.get("user", {}).get("is_admin"))
    elif status == 401:
        if api.exists(name):
            result.update(changed=True, password_set=True)
            if not module.check_mode:
                api.admin_call("PATCH", "/update-password", {"username": name, "password": password})
            _, data = api.admin_call("GET", "/get?" + urlencode({"username": name}))
            is_admin = bool(data.get("user", {}).get("is_admin"))
        else:
            result.update(changed=True, created=True)
            if not module.check_mode:
                api.admin_call("POST", "/create", {"username": name, "password": password})
            is_admin = False
    else:
        module.fail_json(msg=f"MLflow answered {status} to GET {API}/current: {me}")
    if is_admin:
        result.update(changed=True, admin_removed=True)
        if not module.check_mode:
            api.admin_call("PATCH", "/update-admin", {"username": name, "is_admin": False})


def main() -> None:
    """Run the module."""
    module = AnsibleModule(
        argument_spec={
            "tracking_uri": {"type": "str", "required": True},
            "admin_username": {"type": "str", "required": True},
            "admin_password": {"type": "str", "required": True, "no_log": True},
            "name": {"type": "str", "required": True},
            "password": {"type": "str", "no_log": True},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "ca_path": {"type": "path"},
            "timeout": {"type": "int", "default": 30},
        },
        required_if=[("state", "present", ["password"])],
        supports_check_mode=True,
    )
    if module.params["name"] == module.params["admin_username"]:
        module.fail_json(
            msg=f"{module.params['name']} is the admin: a training user needs an account of its own"
        )
    result = {
        "changed": False,
        "created": False,
        "password_set": False,
        "admin_removed": False,
        "deleted": False,
    }
    api = Api(module)
    if module.params["state"] == "absent":
        ensure_absent(module, api, result)
    else:
        ensure_present(module, api, result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
