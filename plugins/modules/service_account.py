#!/usr/bin/python
"""Create a system account with its group and home, or adopt an existing one without churning it."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: service_account
short_description: Create a system account, or keep an existing one as it is but usable for key logins
description:
  - Checks and fixes in one run. A missing group is created (system group, O(gid) if given). A
    missing user is created as a system user with O(group) as its primary group, home O(home) (mode
    O(home_mode), owned by the user and O(group)), shell O(shell), O(uid) if given, and the password
    field set to C(*).
  - An existing user keeps its home, shell, primary group, ids and a real password hash, so hand-made
    accounts are not churned. Only a missing home directory is created (from C(/etc/skel), mode
    O(home_mode)), and a C(!)-locked password field (C(!), C(!!), C(!*), C(!<hash>)) is replaced by
    C(*), since sshd refuses every login, key logins included, of a locked account when C(UsePAM) is
    off. Ansible's M(ansible.builtin.user) cannot do either (it would change the shell and home of an
    existing account, and it treats C(!*) as equal to C(*)).
  - The password hash is never returned; only whether the field starts with C(!) is looked at.
  - Supports check mode (reports what it would do).
options:
  name:
    description: Login name.
    type: str
    required: true
  group:
    description: Primary group given to a created user; created when missing.
    type: str
    required: true
  home:
    description: Home directory given to a created user.
    type: path
    required: true
  shell:
    description: Login shell given to a created user.
    type: path
    required: true
  home_mode:
    description: Mode of a home directory this module creates (quoted octal).
    type: str
    default: "0750"
  uid:
    description: User id given to a created user.
    type: int
  gid:
    description: Group id given to a created group.
    type: int
author: MLflow tracking toolkit
"""

EXAMPLES = r"""
- name: Account | the service account, its group and its home
  mlops.mlflow.service_account:
    name: mlops
    group: mlops
    home: /home/mlops
    shell: /bin/bash
    home_mode: "0750"
"""

RETURN = r"""
actions:
  description: What was done (or, in check mode, would be done), in order.
  returned: always
  type: list
  elements: str
  sample: [create group mlops, create user mlops]
created:
  description: Whether the user did not exist before this run.
  returned: always
  type: bool
"""

import grp
import os
import pwd
import shutil

from ansible.module_utils.basic import AnsibleModule

SHADOW = "/etc/shadow"
SKEL = "/etc/skel"


def password_locked(name: str, shadow: str = SHADOW) -> bool:
    """Whether NAME's password field in SHADOW starts with '!' (the field itself is not kept)."""
    try:
        with open(shadow, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split(":", 2)
                if fields[0] == name and len(fields) > 1:
                    return fields[1].startswith("!")
    except FileNotFoundError:
        pass
    return False


def plan(
    *, group_exists: bool, user: pwd.struct_passwd | None, locked: bool, home_exists: bool, params: dict
) -> list[tuple[str, str]]:
    """The actions that bring the account in line, as (label, kind) pairs; [] when it is."""
    actions = []
    if not group_exists:
        actions.append((f"create group {params['group']}", "group"))
    if user is None:
        actions.append((f"create user {params['name']}", "user"))
        return actions
    if not home_exists:
        actions.append((f"create home directory {user.pw_dir}", "home"))
    if locked:
        actions.append((f"unlock {params['name']} for key logins (password field '*')", "unlock"))
    return actions


def copy_skel(home: str, uid: int, gid: int, skel: str = SKEL) -> None:
    """Copy the skeleton files into HOME (which exists) and give them to UID:GID."""
    if not os.path.isdir(skel):
        return
    for entry in os.listdir(skel):
        src, dest = os.path.join(skel, entry), os.path.join(home, entry)
        if os.path.isdir(src) and not os.path.islink(src):
            shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dest, follow_symlinks=False)
        os.lchown(dest, uid, gid)
        for root, dirs, files in os.walk(dest):
            for n in dirs + files:
                os.lchown(os.path.join(root, n), uid, gid)


def make_home(path: str, uid: int, gid: int, mode: int) -> None:
    """Create HOME with the skeleton files, owned by UID:GID, with MODE."""
    os.makedirs(os.path.dirname(path) or "/", mode=0o755, exist_ok=True)
    os.mkdir(path, mode)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    copy_skel(path, uid, gid)


def run(module: AnsibleModule, argv: list[str]) -> None:
    """Run ARGV; fail the module with its output when it fails."""
    rc, out, err = module.run_command(argv)
    if rc != 0:
        module.fail_json(msg=f"{argv[0]} failed (rc {rc}): {(err or out).strip()}", cmd=argv[:-1])


def main() -> None:
    """Bring the account in line with the options (see DOCUMENTATION)."""
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "group": {"type": "str", "required": True},
            "home": {"type": "path", "required": True},
            "shell": {"type": "path", "required": True},
            "home_mode": {"type": "str", "default": "0750"},
            "uid": {"type": "int"},
            "gid": {"type": "int"},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        mode = int(p["home_mode"], 8)
    except ValueError:
        module.fail_json(msg=f"home_mode={p['home_mode']!r} is not an octal mode such as '0750'.")
    try:
        grp.getgrnam(p["group"])
        group_exists = True
    except KeyError:
        group_exists = False
    try:
        user = pwd.getpwnam(p["name"])
    except KeyError:
        user = None
    home_exists = user is not None and bool(user.pw_dir) and os.path.lexists(user.pw_dir)
    locked = user is not None and password_locked(p["name"])
    actions = plan(group_exists=group_exists, user=user, locked=locked, home_exists=home_exists, params=p)
    labels = [label for label, _ in actions]
    if module.check_mode or not actions:
        module.exit_json(changed=bool(actions), actions=labels, created=user is None)

    for _, kind in actions:
        if kind == "group":
            gid = ["--gid", str(p["gid"])] if p["gid"] is not None else []
            run(module, ["groupadd", "--system", *gid, p["group"]])
        elif kind == "user":
            uid = ["--uid", str(p["uid"])] if p["uid"] is not None else []
            run(
                module,
                ["useradd", "--system", "--gid", p["group"], "--home-dir", p["home"], "--shell", p["shell"]]
                + [*uid, "--password", "*", "--no-create-home", p["name"]],
            )
            created = pwd.getpwnam(p["name"])
            if os.path.lexists(p["home"]):
                os.chown(p["home"], created.pw_uid, created.pw_gid)
                os.chmod(p["home"], mode)
            else:
                make_home(p["home"], created.pw_uid, created.pw_gid, mode)
        elif kind == "home":
            make_home(user.pw_dir, user.pw_uid, user.pw_gid, mode)
        elif kind == "unlock":
            run(module, ["usermod", "--password", "*", p["name"]])
    module.exit_json(changed=True, actions=labels, created=user is None)


if __name__ == "__main__":
    main()
