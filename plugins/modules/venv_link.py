#!/usr/bin/python
"""Point a stable path (a symlink) at one of several versioned virtualenvs, atomically."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: venv_link
short_description: Serve one of several versioned virtualenvs through a stable symlink
description:
  - O(path) (e.g. C(/opt/mlflow)) is a symlink to the virtualenv that serves, one of the versioned
    directories C(<path>-<version>) beside it (e.g. C(/opt/mlflow-3.17.2)). Everything that runs goes
    through O(path), so switching versions is one C(rename(2)) of a new symlink over the old one.
  - Adoption. When O(path) is a real directory (a virtualenv made before this layout), it is renamed
    to C(<path>-<version>), the MLflow version read from its metadata (C(<path>-previous) when it has
    none), and O(path) becomes a symlink to it. The files a running process uses resolve to the same
    inodes before and after, so this needs no restart. The gap between the two renames is a few
    microseconds.
  - Switch. With O(target), O(path) is pointed at O(target) (a new symlink renamed over the old one;
    there is no moment without O(path)). When O(stop) names a systemd unit and the link changes,
    the unit is stopped first, so that no process of the old version runs with O(path) leading to the
    new one. The virtualenv switched away from gets its modification time set to now (the order of
    O(keep_previous)).
  - Pruning. With O(keep_previous) >= 0, the versioned virtualenvs other than the one served are
    removed, except the O(keep_previous) most recently served (newest modification time). Only
    directories named C(<path>-<version>) (a digit first) or C(<path>-previous) that hold a
    C(pyvenv.cfg) are considered; C(<path>-wheelhouse), C(<path>-client) and the like are not.
  - Supports check mode (reports what it would do).
options:
  path:
    description: The stable path, a symlink once managed (e.g. C(/opt/mlflow)).
    type: path
    required: true
  target:
    description:
      - The virtualenv directory O(path) must point at. It must exist (unless in check mode).
      - Omitted, the module only adopts a real directory at O(path) (and prunes).
    type: path
  create_only:
    description:
      - Only create the link when O(path) does not exist yet (a fresh install, nothing serving);
        an existing link is left as it is (and nothing is pruned).
    type: bool
    default: false
  stop:
    description: A systemd unit stopped before the link changes to another target (when it is active).
    type: str
  keep_previous:
    description: How many previously served virtualenvs to keep (-1, the default, removes none).
    type: int
    default: -1
author: MLflow tracking toolkit
"""

EXAMPLES = r"""
- name: Serve MLflow 3.17.2 through /opt/mlflow, keep one previous version
  mlops.mlflow.venv_link:
    path: /opt/mlflow
    target: /opt/mlflow-3.17.2
    stop: mlflow.service
    keep_previous: 1
"""

RETURN = r"""
adopted:
  description: Where a real directory at O(path) was moved to (empty when there was none).
  returned: always
  type: str
previous:
  description: The target O(path) pointed at before (empty when it was no symlink).
  returned: always
  type: str
switched:
  description: Whether O(path) now points at another directory than before.
  returned: always
  type: bool
stopped:
  description: Whether O(stop) was stopped before the switch.
  returned: always
  type: bool
removed:
  description: The virtualenvs removed by O(keep_previous).
  returned: always
  type: list
  elements: str
"""

import glob
import os
import re
import shutil
import time

from ansible.module_utils.basic import AnsibleModule

# A version suffix: what `pip` accepts as a release starts with a digit.
VERSION_SUFFIX = re.compile(r"^[0-9][0-9A-Za-z.+!_-]*$")


def mlflow_version(venv: str) -> str:
    """The MLflow version installed in VENV (from its dist-info directory name), or ""."""
    for info in sorted(
        glob.glob(os.path.join(venv, "lib", "python3*", "site-packages", "mlflow-*.dist-info"))
    ):
        version = os.path.basename(info)[len("mlflow-") : -len(".dist-info")]
        if VERSION_SUFFIX.match(version):
            return version
    return ""


def adoption_dest(path: str) -> str:
    """Where a real directory at PATH goes: <path>-<its MLflow version>, or <path>-previous."""
    version = mlflow_version(path)
    if version and not os.path.lexists(f"{path}-{version}"):
        return f"{path}-{version}"
    return f"{path}-previous"


def managed(path: str) -> list[str]:
    """The versioned virtualenvs beside PATH (<path>-<version> or <path>-previous, with pyvenv.cfg)."""
    parent, base = os.path.split(path.rstrip("/"))
    out = []
    for entry in sorted(os.listdir(parent or "/")):
        if not entry.startswith(base + "-"):
            continue
        suffix = entry[len(base) + 1 :]
        full = os.path.join(parent, entry)
        if (VERSION_SUFFIX.match(suffix) or suffix == "previous") and not os.path.islink(full):
            if os.path.isfile(os.path.join(full, "pyvenv.cfg")):
                out.append(full)
    return out


def to_prune(path: str, serving: str, keep: int, newest: str = "") -> list[str]:
    """The managed virtualenvs to remove: all but SERVING and the KEEP most recently served.

    NEWEST counts as the most recently served (the one a switch leaves, in a preview).
    """
    others = [v for v in managed(path) if os.path.realpath(v) != os.path.realpath(serving)]
    others.sort(key=lambda v: (v == newest, os.stat(v).st_mtime), reverse=True)
    return others[keep:] if keep >= 0 else []


def symlink_atomically(target: str, path: str) -> None:
    """Make PATH a symlink to TARGET: a new link renamed over the old one (never a missing PATH)."""
    tmp = f"{path}.link-{os.getpid()}"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, path)


def adopt(module: AnsibleModule, path: str, result: dict) -> None:
    """A real directory at PATH (the layout before versioned venvs) is renamed, then linked."""
    if os.path.isdir(path) and not os.path.islink(path):
        dest = adoption_dest(path)
        if os.path.lexists(dest):
            module.fail_json(msg=f"{path} is a directory and {dest} exists: move one of them away", **result)
        result["adopted"] = dest
        if not module.check_mode:
            os.rename(path, dest)
            symlink_atomically(dest, path)
    elif os.path.lexists(path) and not os.path.islink(path):
        module.fail_json(msg=f"{path} exists and is neither a directory nor a symlink", **result)


def stop_unit(module: AnsibleModule, unit: str, result: dict) -> None:
    """Stop the systemd unit UNIT when it is active."""
    _, out, _ = module.run_command(["systemctl", "is-active", unit])
    if out.strip() in ("active", "activating", "reloading"):
        rc, out, err = module.run_command(["systemctl", "stop", unit])
        if rc != 0:
            module.fail_json(msg=f"could not stop {unit}: {err or out}", **result)
        result["stopped"] = True


def switch(module: AnsibleModule, path: str, target: str, current: str, result: dict) -> None:
    """Point PATH at TARGET: stop the old version first, then one rename; mark CURRENT as just served."""
    result["switched"] = True
    if module.check_mode:
        return
    if module.params["stop"] and current:
        stop_unit(module, module.params["stop"], result)
    symlink_atomically(target, path)
    if current and os.path.isdir(current):
        now = time.time()
        os.utime(current, (now, now))


def main() -> None:
    """Adopt a real directory, switch the link, prune old virtualenvs."""
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "target": {"type": "path"},
            "create_only": {"type": "bool", "default": False},
            "stop": {"type": "str"},
            "keep_previous": {"type": "int", "default": -1},
        },
        supports_check_mode=True,
    )
    path = module.params["path"].rstrip("/")
    target = (module.params["target"] or "").rstrip("/")
    result = {"adopted": "", "previous": "", "switched": False, "stopped": False, "removed": []}
    if target and target == path:
        module.fail_json(msg=f"target {target} is the link itself: the versioned directory lies beside it")
    if target and not os.path.isdir(target) and not module.check_mode:
        module.fail_json(msg=f"target {target} is not a directory (build the virtualenv first)", **result)

    adopt(module, path, result)
    current = result["adopted"] or (os.readlink(path) if os.path.islink(path) else "")
    result["previous"] = current
    if module.params["create_only"] and current:
        module.exit_json(changed=bool(result["adopted"]), **result)
    if target and current != target:
        switch(module, path, target, current, result)

    # Pruning: never the one served. In a preview nothing was touched: the one a switch leaves
    # counts as the newest.
    serving = target or current
    if serving and module.params["keep_previous"] >= 0:
        newest = current if module.check_mode and result["switched"] else ""
        result["removed"] = to_prune(path, serving, module.params["keep_previous"], newest)
        if not module.check_mode:
            for old in result["removed"]:
                shutil.rmtree(old)

    changed = bool(result["adopted"]) or result["switched"] or bool(result["removed"])
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
