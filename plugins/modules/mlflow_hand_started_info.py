#!/usr/bin/python
"""Report the `mlflow server` processes that run outside the role's unit (started by hand)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mlflow_hand_started_info
short_description: List MLflow servers started by hand (outside mlflow.service)
description:
  - Scans C(/proc) for C(mlflow server) processes (C(mlflow server ...) or C(python -m mlflow server ...))
    whose control group is not the role's unit (servers started from a shell with C(nohup) or C(setsid),
    as in the team's notes). Their workers (gunicorn/uvicorn children) are not listed separately.
  - Reports each one's PID, user, command line, working directory, port and the SQLite file its
    C(--backend-store-uri) resolves to (a relative C(sqlite:///x.db) is relative to the working directory).
  - Read-only; M(mlops.mlflow.mlflow_hand_started) stops them.
extends_documentation_fragment: [mlops.mlflow.hand_started]
author: mlops-tracking
"""

EXAMPLES = r"""
- name: Find hand-started MLflow servers
  mlops.mlflow.mlflow_hand_started_info:
  register: found
"""

RETURN = r"""
servers:
  description: The hand-started servers.
  type: list
  elements: dict
  returned: always
  sample:
    - pid: 640
      user: root
      cmdline: /root/venv/bin/mlflow server -h 0.0.0.0 --backend-store-uri sqlite:///home/mlops/mlflow/mlflow.db
      cwd: /
      port: 5000
      backend_store_uri: sqlite:///home/mlops/mlflow/mlflow.db
      sqlite_path: /home/mlops/mlflow/mlflow.db
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mlops.mlflow.plugins.module_utils.hand_started_servers import find_servers


def main() -> None:
    """Run the module: report the hand-started servers."""
    module = AnsibleModule(
        argument_spec={"unit": {"type": "str", "default": "mlflow.service"}},
        supports_check_mode=True,
    )
    module.exit_json(changed=False, servers=find_servers(module.params["unit"]))


if __name__ == "__main__":
    main()
