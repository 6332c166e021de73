#!/usr/bin/python
"""Read-only look at the service account and the packages the mlops_account role manages."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mlops_account_state
short_description: Report the state of a user, its group and some Debian packages, changing nothing
description:
  - One module run answers what the role's "ensure" tasks would otherwise each look up on the host,
    so that an idempotent re-run skips them. It never changes anything (check mode is the same run).
  - The password field of O(name) is read from C(/etc/shadow), but only whether it starts with
    C(!) (a locked account) is returned; the hash never leaves the host.
options:
  name:
    description: The user to look up.
    type: str
    required: true
  group:
    description: The group to look up.
    type: str
    required: true
  packages:
    description: Debian packages whose installed state is reported.
    type: list
    elements: str
    default: []
author: MLflow tracking toolkit
"""

EXAMPLES = r"""
- name: State | read the account and the packages
  mlops_account_state:
    name: mlops
    group: mlops
    packages: [acl]
  register: __state
"""

RETURN = r"""
group:
  description: The group's name and gid, or null when it does not exist.
  returned: always
  type: dict
user:
  description: The user's name, uid, gid, home and shell, or null when it does not exist.
  returned: always
  type: dict
locked:
  description: Whether the user's password field starts with C(!) (false for a missing user).
  returned: always
  type: bool
home_exists:
  description: Whether the user's home directory exists (false for a missing user).
  returned: always
  type: bool
packages:
  description: Package name -> installed (dpkg status "ii").
  returned: always
  type: dict
"""

import grp
import os
import pwd

from ansible.module_utils.basic import AnsibleModule


def group_entry(name: str) -> dict | None:
    try:
        g = grp.getgrnam(name)
    except KeyError:
        return None
    return {"name": g.gr_name, "gid": g.gr_gid}


def user_entry(name: str) -> dict | None:
    try:
        p = pwd.getpwnam(name)
    except KeyError:
        return None
    return {"name": p.pw_name, "uid": p.pw_uid, "gid": p.pw_gid, "home": p.pw_dir, "shell": p.pw_shell}


def password_locked(name: str, shadow: str = "/etc/shadow") -> bool:
    """True when NAME's password field starts with '!'; only that first character is looked at."""
    try:
        with open(shadow, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                fields = line.split(":", 2)
                if fields[0] == name and len(fields) > 1:
                    return fields[1].startswith("!")
    except OSError:
        pass
    return False


def installed_packages(module: AnsibleModule, names: list[str]) -> dict[str, bool]:
    """Package -> installed, from one dpkg-query run (a package dpkg does not know is not installed)."""
    found = dict.fromkeys(names, False)
    dpkg = module.get_bin_path("dpkg-query")
    if not names or dpkg is None:
        return found
    # dpkg-query exits 1 when a name is unknown; the known ones are still printed.
    _rc, out, _err = module.run_command([dpkg, "-W", "-f", "${Package} ${db:Status-Abbrev}\n", *names])
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in found:
            found[parts[0]] = parts[1] == "ii"
    return found


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "group": {"type": "str", "required": True},
            "packages": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    name = module.params["name"]
    user = user_entry(name)
    module.exit_json(
        changed=False,
        group=group_entry(module.params["group"]),
        user=user,
        locked=password_locked(name) if user else False,
        home_exists=bool(user) and os.path.isdir(user["home"]),
        packages=installed_packages(module, module.params["packages"]),
    )


if __name__ == "__main__":
    main()
