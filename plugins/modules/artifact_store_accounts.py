#!/usr/bin/python
"""Read-only: every account and group of the host, in the shape of ansible.builtin.getent's facts."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: artifact_store_accounts
short_description: List the host's accounts and groups (one module run for both), changing nothing
description:
  - Returns what two runs of C(ansible.builtin.getent) (databases C(passwd) and C(group)) would put in
    C(getent_passwd) and C(getent_group), read through the C(pwd) and C(grp) modules (NSS, as getent).
  - The role's input checks use it to find whether its user and group exist and whether the artifact
    root holds a home directory. Password fields are returned as C(x), never as the host has them.
options: {}
author: MLflow tracking toolkit
"""

EXAMPLES = r"""
- name: Assert | read the accounts and groups
  artifact_store_accounts:
  register: __accounts
"""

RETURN = r"""
passwd:
  description: Login name -> [x, uid, gid, gecos, home, shell] (strings, as getent_passwd).
  returned: always
  type: dict
group:
  description: Group name -> [x, gid, members] (strings, as getent_group).
  returned: always
  type: dict
"""

import grp
import pwd

from ansible.module_utils.basic import AnsibleModule


def accounts() -> dict[str, list[str]]:
    """Login name -> [x, uid, gid, gecos, home, shell] of every account (as getent_passwd)."""
    return {
        p.pw_name: ["x", str(p.pw_uid), str(p.pw_gid), p.pw_gecos, p.pw_dir, p.pw_shell]
        for p in pwd.getpwall()
    }


def groups() -> dict[str, list[str]]:
    """Group name -> [x, gid, members] of every group (as getent_group)."""
    return {g.gr_name: ["x", str(g.gr_gid), ",".join(g.gr_mem)] for g in grp.getgrall()}


def main() -> None:
    """Return the accounts and groups; change nothing."""
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    module.exit_json(changed=False, passwd=accounts(), group=groups())


if __name__ == "__main__":
    main()
