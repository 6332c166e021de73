#!/usr/bin/python
"""Read-only diagnosis of an MLflow tracking server and of its SFTP artifact host."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mlflow_doctor
short_description: Diagnose an MLflow tracking server or its SFTP artifact host (read-only)
description:
  - Inspects a host and returns one finding per check, each with a level (C(ok), C(warn),
    C(error)), a message and the fix.
  - Never changes anything (C(changed) is always false) and behaves the same in check mode.
  - Works on a hand-made host (an C(mlflow server) started from a shell) as well as on a host
    provisioned by this toolkit (C(mlflow.service)); the configuration in use is read from the
    running process (its arguments, environment and working directory), else from the unit.
  - The only network actions are an HTTP C(GET /health) on the server's port and an SFTP login
    that runs C(pwd) (C(StrictHostKeyChecking=yes), C(UpdateHostKeys=no); nothing is written).
options:
  role:
    description: C(server) inspects the tracking server, C(artifact) the SFTP artifact host.
    type: str
    required: true
    choices: [server, artifact]
  account:
    description: Service account (owner of the artifacts, SFTP login).
    type: str
    default: mlops
  group:
    description: Group the artifact tree should have.
    type: str
    default: mlops
  key_accounts:
    description: Local accounts whose ~/.ssh is inspected on the server (the process user is added).
    type: list
    elements: str
    default: [mlops, root]
  unit:
    description: systemd unit of the tracking server.
    type: str
    default: mlflow.service
  port:
    description: Expected HTTP port of the server; 0 takes the port in use.
    type: int
    default: 0
  backup_dir:
    description: Directory of the database backups; empty means C(backups) next to the database.
    type: str
    default: ""
  backup_max_age_days:
    description: Newest backup older than this is reported.
    type: float
    default: 2
  backup_timer:
    description: >-
      systemd timer that makes the backups (an active timer that never ran excuses a missing
      backup).
    type: str
    default: mlflow-backup.timer
  min_free_percent:
    description: Free space below this percentage is reported.
    type: float
    default: 10
  min_free_gib:
    description: Free space below this many GiB is reported.
    type: float
    default: 2
  sftp_login:
    description: Try an SFTP login (C(pwd) only) from the server to the artifact host.
    type: bool
    default: true
  sftp_timeout:
    description: Seconds an SFTP login may take.
    type: int
    default: 15
  server_name:
    description: Inventory name of this tracking server (copied into the returned targets).
    type: str
    default: ""
  artifact_root:
    description: Artifact root on the artifact host; empty takes it from I(candidates).
    type: str
    default: ""
  artifact_port:
    description: SFTP port clients use; 0 takes it from I(candidates) (else 22).
    type: int
    default: 0
  dir_mode:
    description: Expected mode of directories in the artifact tree.
    type: str
    default: "2750"
  file_mode:
    description: Expected mode of files in the artifact tree.
    type: str
    default: "0640"
  host_names:
    description: Names and addresses of this host (artifact role), to pick its I(candidates).
    type: list
    elements: str
    default: []
  candidates:
    description: C(discovered.targets) returned by the server role on the tracking servers.
    type: list
    elements: dict
    default: []
  candidates_keys:
    description: C(discovered.public_keys) returned by the server role (public halves only).
    type: list
    elements: dict
    default: []
  max_examples:
    description: Paths listed per artifact-tree finding.
    type: int
    default: 5
author: MLflow toolkit
"""

EXAMPLES = r"""
- name: Diagnose the tracking server
  mlflow_doctor:
    role: server
  register: doctor

- name: Print the findings
  ansible.builtin.debug:
    msg: "{{ doctor.lines }}"
"""

RETURN = r"""
findings:
  description: One entry per check.
  type: list
  elements: dict
  returned: always
  sample: [{level: error, check: process_user, message: "...", fix: "..."}]
lines:
  description: "The findings as C([LEVEL] check: message -> fix) lines."
  type: list
  elements: str
  returned: always
summary:
  description: Counts of findings per level.
  type: dict
  returned: always
discovered:
  description: What was found (configuration in use, artifact targets, public keys in use).
  type: dict
  returned: always
"""

import re
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_artifact_host import ArtifactDoctor
from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_server import ServerDoctor

ARGUMENT_SPEC = dict(
    role=dict(type="str", required=True, choices=["server", "artifact"]),
    account=dict(type="str", default="mlops"),
    group=dict(type="str", default="mlops"),
    key_accounts=dict(type="list", elements="str", default=["mlops", "root"]),
    unit=dict(type="str", default="mlflow.service"),
    port=dict(type="int", default=0),
    backup_dir=dict(type="str", default=""),
    backup_max_age_days=dict(type="float", default=2),
    backup_timer=dict(type="str", default="mlflow-backup.timer"),
    min_free_percent=dict(type="float", default=10),
    min_free_gib=dict(type="float", default=2),
    sftp_login=dict(type="bool", default=True),
    sftp_timeout=dict(type="int", default=15),
    server_name=dict(type="str", default=""),
    artifact_root=dict(type="str", default=""),
    artifact_port=dict(type="int", default=0),
    dir_mode=dict(type="str", default="2750"),
    file_mode=dict(type="str", default="0640"),
    host_names=dict(type="list", elements="str", default=[]),
    candidates=dict(type="list", elements="dict", default=[]),
    candidates_keys=dict(type="list", elements="dict", default=[]),
    max_examples=dict(type="int", default=5),
)


def main():
    """Run the doctor for the host's role and return its findings; never changes anything."""
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    for key in ("dir_mode", "file_mode"):
        if not re.fullmatch(r"[0-7]{3,4}", module.params[key]):
            module.fail_json(msg=f"{key} '{module.params[key]}' is not an octal mode such as 2750")
    doctor = ServerDoctor(module) if module.params["role"] == "server" else ArtifactDoctor(module)
    try:
        report, discovered = doctor.run()
    except Exception as exc:
        report, discovered = doctor.r, getattr(doctor, "discovered", {})
        report.error(
            "doctor",
            f"internal error: {exc!r}",
            "report this with the traceback: " + traceback.format_exc().strip().splitlines()[-3],
        )
    module.exit_json(
        changed=False,
        findings=report.findings,
        lines=report.lines(),
        summary=report.summary(),
        discovered=discovered,
    )


if __name__ == "__main__":
    main()
