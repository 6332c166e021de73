#!/usr/bin/python
"""Read-only look at everything the artifact_store role manages except the artifact tree."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: artifact_store_state
short_description: Report the state of sshd and its artifact-store configuration, changing nothing
description:
  - One module run answers what the role's "ensure" tasks would otherwise each look up on the host
    (packages, host keys, the drop-in, the service, sshd's effective configuration, the listening
    port), so that an idempotent re-run skips them. It never changes anything (check mode is the
    same run). Missing programs and files are reported as missing, never as an error.
options:
  packages:
    description: Debian packages whose installed state is reported.
    type: list
    elements: str
    default: []
  sshd_config:
    description: The main sshd configuration file, whose text is returned.
    type: path
    required: true
  host_key:
    description: A host key file whose existence is reported (C(ssh-keygen -A) creates it).
    type: path
    required: true
  privsep_dir:
    description: sshd's privilege separation directory, whose type, owner, group and mode are reported.
    type: path
    default: /run/sshd
  files:
    description: Files whose sha256, owner, group and mode are reported (the drop-in).
    type: list
    elements: path
    default: []
  service:
    description: The systemd unit whose UnitFileState and ActiveState are reported.
    type: str
    required: true
  port:
    description: The TCP port whose listening socket is looked for (with C(ss)).
    type: int
    required: true
author: MLflow tracking toolkit
"""

EXAMPLES = r"""
- name: State | read sshd's state
  artifact_store_state:
    packages: [openssh-server, openssh-sftp-server]
    sshd_config: /etc/ssh/sshd_config
    host_key: /etc/ssh/ssh_host_ed25519_key
    files: [/etc/ssh/sshd_config.d/50-mlflow-artifact-store.conf]
    service: ssh
    port: 2222
  register: __state
"""

RETURN = r"""
packages:
  description: Package name -> installed (dpkg status "ii").
  returned: always
  type: dict
sshd_config:
  description: The text of O(sshd_config), or null when it cannot be read.
  returned: always
  type: str
host_key_exists:
  description: Whether O(host_key) exists.
  returned: always
  type: bool
privsep_dir:
  description: "[type, owner, group, mode] of O(privsep_dir); type is directory, file, other or missing."
  returned: always
  type: list
files:
  description: Path -> [sha256, owner, group, mode] for every O(files) entry that is a regular file.
  returned: always
  type: dict
service:
  description: The unit's UnitFileState and ActiveState (empty strings without systemctl).
  returned: always
  type: dict
sshd_effective:
  description: The rc and output of C(sshd -T) (rc -1 when sshd is not installed).
  returned: always
  type: dict
listening:
  description: Whether a TCP socket listens on O(port).
  returned: always
  type: bool
"""

import grp
import hashlib
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule


def owner_names(st: os.stat_result) -> tuple[str, str]:
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return owner, group


def path_state(path: str) -> list[str]:
    """[type, owner, group, mode] without following a symlink."""
    try:
        st = os.lstat(path)
    except OSError:
        return ["missing", "", "", ""]
    kind = "directory" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else "other"
    return [kind, *owner_names(st), format(stat.S_IMODE(st.st_mode), "04o")]


def file_states(paths: list[str]) -> dict[str, list[str]]:
    """Path -> [sha256, owner, group, mode] for the regular files among PATHS."""
    found = {}
    for path in paths:
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                continue
            with open(path, "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()
        except OSError:
            continue
        found[path] = [digest, *owner_names(st), format(stat.S_IMODE(st.st_mode), "04o")]
    return found


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


def unit_state(module: AnsibleModule, unit: str) -> dict[str, str]:
    systemctl = module.get_bin_path("systemctl")
    state = {"UnitFileState": "", "ActiveState": ""}
    if systemctl is None:
        return state
    _rc, out, _err = module.run_command([systemctl, "show", "-p", "UnitFileState,ActiveState", unit])
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key in state:
            state[key] = value.strip()
    return state


def sshd_effective(module: AnsibleModule) -> dict:
    sshd = "/usr/sbin/sshd"
    if not os.access(sshd, os.X_OK):
        return {"rc": -1, "stdout": ""}
    rc, out, _err = module.run_command([sshd, "-T"])
    return {"rc": rc, "stdout": out}


def listening(module: AnsibleModule, port: int) -> bool:
    ss = module.get_bin_path("ss")
    if ss is None:
        return False
    rc, out, _err = module.run_command([ss, "-Hltn", "sport", "=", f":{port}"])
    return rc == 0 and bool(out.strip())


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "packages": {"type": "list", "elements": "str", "default": []},
            "sshd_config": {"type": "path", "required": True},
            "host_key": {"type": "path", "required": True},
            "privsep_dir": {"type": "path", "default": "/run/sshd"},
            "files": {"type": "list", "elements": "path", "default": []},
            "service": {"type": "str", "required": True},
            "port": {"type": "int", "required": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        with open(p["sshd_config"], encoding="utf-8", errors="replace") as fh:
            main_config = fh.read()
    except OSError:
        main_config = None
    module.exit_json(
        changed=False,
        packages=installed_packages(module, p["packages"]),
        sshd_config=main_config,
        host_key_exists=os.path.exists(p["host_key"]),
        privsep_dir=path_state(p["privsep_dir"]),
        files=file_states(p["files"]),
        service=unit_state(module, p["service"]),
        sshd_effective=sshd_effective(module),
        listening=listening(module, p["port"]),
    )


if __name__ == "__main__":
    main()
