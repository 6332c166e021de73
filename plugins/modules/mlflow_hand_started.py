#!/usr/bin/python
"""Make sure no `mlflow server` runs outside the role's unit: stop the ones started by hand."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mlflow_hand_started
short_description: Stop MLflow servers started by hand (outside mlflow.service)
description:
  - Finds the C(mlflow server) processes whose control group is not the role's unit, as
    M(mlops.mlflow.mlflow_hand_started_info) does, and stops each with its descendants (SIGTERM, then
    SIGKILL after I(timeout)). Changed when there was one to stop; check mode reports it without signalling.
  - Fails when a server is still running after that.
options:
  state:
    description:
      - C(absent), the only state (no hand-started server runs).
      - To list them without stopping them, use M(mlops.mlflow.mlflow_hand_started_info).
    type: str
    choices: [absent]
    default: absent
  timeout:
    description: Seconds to wait after SIGTERM before SIGKILL.
    type: int
    default: 30
extends_documentation_fragment: [mlops.mlflow.hand_started]
author: mlops-tracking
"""

EXAMPLES = r"""
- name: Stop hand-started MLflow servers
  mlops.mlflow.mlflow_hand_started:
    state: absent
"""

RETURN = r"""
servers:
  description:
    - The hand-started servers found, before stopping them.
    - As M(mlops.mlflow.mlflow_hand_started_info) lists them.
  type: list
  elements: dict
  returned: always
stopped:
  description: PIDs that were signalled (main processes and descendants).
  type: list
  elements: int
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mlops.mlflow.plugins.module_utils.hand_started_servers import find_servers, stop


def main() -> None:
    """Run the module: stop the hand-started servers."""
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "choices": ["absent"], "default": "absent"},
            "unit": {"type": "str", "default": "mlflow.service"},
            "timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    servers = find_servers(module.params["unit"])
    stopped: list[int] = []
    if servers and not module.check_mode:
        stopped = stop([s["pid"] for s in servers], module.params["timeout"])
        left = find_servers(module.params["unit"])
        if left:
            module.fail_json(
                msg=f"could not stop {[s['pid'] for s in left]}", servers=servers, stopped=stopped
            )
    module.exit_json(changed=bool(servers), servers=servers, stopped=stopped)


if __name__ == "__main__":
    main()
