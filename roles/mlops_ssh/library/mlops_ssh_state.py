#!/usr/bin/python
"""Read-only probe of everything the mlops_ssh role manages on one host, in one module call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mlops_ssh_state
short_description: Read the SSH key state the mlops_ssh role manages on one host (read-only)
description:
  - One call returns what the role would otherwise read with a dozen module runs (getent, stat,
    ssh-keygen -l, slurp, find, cat): the role compares it with what it wants and runs an ensure
    task only where they differ (or where this probe cannot tell).
  - On a key-holding host (O(key_name) set) it returns the dpkg state of O(packages), the passwd
    entry of every user of O(users), the current key of the first user that exists (existence,
    mtime, C(ssh-keygen -l) fields, public key), and for every user that exists the owner, group
    and mode of C(~/.ssh), of each file of O(block_files) with the text of the role's managed
    block in it, and of the key pair with the SHA-256 of each file, and whether the staging pair
    (NAME.new, NAME.new.pub) exists.
  - On an artifact host (O(host_keys) and O(authorized_keys)) it returns the host public key lines
    of C(/etc/ssh/ssh_host_*_key.pub) and each user's C(~/.ssh/authorized_keys) lines with the
    owner, group and mode of C(~/.ssh) and of that file.
  - Never changes anything (check mode is supported: the module behaves the same). Never returns
    private key content, only its SHA-256. Paths are looked at with C(lstat): a symbolic link is
    reported as type C(link), never followed (except C(ssh-keygen -l), which reads the public key).
options:
  users:
    description: Local user names to look up (passwd through NSS, like C(getent passwd)).
    type: list
    elements: str
    default: []
  packages:
    description: Debian package names whose C(dpkg-query) status to return.
    type: list
    elements: str
    default: []
  key_name:
    description: File name of the key pair in C(~/.ssh); when unset no key or client file is read.
    type: str
  block_files:
    description: Files in C(~/.ssh) whose managed block (between the O(marker) lines) to return.
    type: list
    elements: str
    default: []
  marker:
    description: Marker line of the managed block, with C({mark}) for BEGIN / END (as blockinfile).
    type: str
    default: "# {mark} ANSIBLE MANAGED BLOCK mlops_ssh"
  host_keys:
    description: Return the lines of the host public keys C(/etc/ssh/ssh_host_*_key.pub).
    type: bool
    default: false
  host_keys_dir:
    description: Directory holding the host keys (for tests).
    type: path
    default: /etc/ssh
  authorized_keys:
    description: Return every user's C(~/.ssh/authorized_keys) lines, owner, group and mode.
    type: bool
    default: false
author: MLflow tracking toolkit
"""

EXAMPLES = r"""
- name: Probe the key-holding host
  mlops_ssh_state:
    users: [mlops, root]
    packages: [openssh-client]
    key_name: id_mlflow_sftp
    block_files: [known_hosts, config]
  check_mode: false
  no_log: true

- name: Probe an artifact host
  mlops_ssh_state:
    users: [mlops]
    host_keys: true
    authorized_keys: true
  check_mode: false
  no_log: true
"""

RETURN = r"""
packages:
  description: Per package, C(status) (dpkg's db:Status-Abbrev, '' when unknown) and C(installed).
  type: dict
  returned: always
users:
  description: Per user of O(users), C({uid, gid, home}), or null when the user does not exist.
  type: dict
  returned: always
key:
  description:
    - The first existing user's key C(~/.ssh/KEY_NAME) (empty without O(key_name) or users).
    - C(path), C(exists) and C(mtime) (lstat of the private key), C(info_rc) and C(info)
      (C(ssh-keygen -l -f KEY.pub): "BITS FINGERPRINT COMMENT (TYPE)"), C(pub) (the public
      key file's text, stripped).
  type: dict
  returned: always
homes:
  description:
    - Per existing user, C(ssh_dir), one entry per O(block_files) file (with C(block), the text
      between the markers, null unless exactly one BEGIN line precedes exactly one END line),
      C(key) and C(key_pub) (with C(sha256)), C(stage) (whether NAME.new or NAME.new.pub exists),
      C(authorized_keys) (with C(lines), split at newlines only, and C(plain), true when every
      line is printable ASCII or tabs).
    - Each path entry has C(exists), C(type) (dir, file, link, other), C(uid), C(gid), C(mode)
      (four octal digits).
  type: dict
  returned: always
host_keys:
  description: Lines of the host public key files, files in name order (with O(host_keys)).
  type: list
  returned: always
host_key_files:
  description: The host public key files read.
  type: list
  returned: always
"""

import fnmatch
import hashlib
import os
import pwd
import re
import stat
import subprocess

from ansible.module_utils.basic import AnsibleModule

_TYPES = ((stat.S_ISDIR, "dir"), (stat.S_ISREG, "file"), (stat.S_ISLNK, "link"))


def path_state(path):
    """lstat of PATH as {exists, type, uid, gid, mode}; never follows a symlink."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return {"exists": False, "type": None, "uid": None, "gid": None, "mode": None}
    kind = next((name for test, name in _TYPES if test(st.st_mode)), "other")
    return {"exists": True, "type": kind, "uid": st.st_uid, "gid": st.st_gid,
            "mode": "%04o" % stat.S_IMODE(st.st_mode), "mtime": int(st.st_mtime)}


def read_bytes(path):
    """Content of a regular file (not through a symlink), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def managed_block(data, marker):
    """Text between the BEGIN and END marker lines, as blockinfile finds them.

    None unless there is exactly one BEGIN line and one END line after it (anything else:
    blockinfile may or may not change the file, so the caller must run it).
    """
    if data is None:
        return None
    begin = (marker.replace("{mark}", "BEGIN") + "\n").encode()
    end = (marker.replace("{mark}", "END") + "\n").encode()
    lines = data.splitlines(True)
    starts = [i for i, line in enumerate(lines) if line == begin]
    ends = [i for i, line in enumerate(lines) if line == end]
    if len(starts) != 1 or len(ends) != 1 or starts[0] >= ends[0]:
        return None
    try:
        return b"".join(lines[starts[0] + 1:ends[0]]).decode("utf-8")
    except UnicodeDecodeError:
        return None


_PLAIN = re.compile(rb"[\t\x20-\x7e]*")


def text_lines(data):
    """Lines of a text file split at "\n" only, as lineinfile reads them; [] for a missing file."""
    if data is None:
        return []
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return [line.decode("utf-8", "replace") for line in lines]


def plain(data):
    """True when every line is printable ASCII (tabs allowed): a regular expression then
    matches such a line alike in str and in bytes mode (lineinfile, authorized_key)."""
    return all(_PLAIN.fullmatch(line) for line in (data or b"").split(b"\n"))


def file_state(path, block_marker=None, digest=False, lines=False):
    out = path_state(path)
    data = read_bytes(path) if out["type"] == "file" else None
    if block_marker is not None:
        out["block"] = managed_block(data, block_marker)
    if digest:
        out["sha256"] = hashlib.sha256(data).hexdigest() if data is not None else None
    if lines:
        out["lines"] = text_lines(data)
        out["plain"] = plain(data)
    return out


def probe_home(home, key_name=None, block_files=(), marker=None, authorized_keys=False):
    """What the role manages in one user's HOME/.ssh."""
    ssh = os.path.join(home, ".ssh")
    out = {"ssh_dir": path_state(ssh)}
    for name in block_files:
        out[name] = file_state(os.path.join(ssh, name), block_marker=marker)
    if key_name:
        key = os.path.join(ssh, key_name)
        out["key"] = file_state(key, digest=True)
        out["key_pub"] = file_state(key + ".pub", digest=True)
        out["stage"] = any(os.path.lexists(key + ".new" + s) for s in ("", ".pub"))
    if authorized_keys:
        out["authorized_keys"] = file_state(os.path.join(ssh, "authorized_keys"), lines=True)
    return out


def key_info(path, run):
    """The current key at PATH: lstat of the private key, ssh-keygen -l and text of PATH.pub."""
    st = path_state(path)
    out = {"path": path, "exists": st["exists"], "mtime": st.get("mtime"), "info_rc": None,
           "info": "", "pub": ""}
    if not st["exists"]:
        return out
    out["info_rc"], out["info"] = run(["ssh-keygen", "-l", "-f", path + ".pub"])
    try:
        with open(path + ".pub", "rb") as f:
            out["pub"] = f.read().decode("utf-8", "replace").strip()
    except OSError:
        out["pub"] = ""
    return out


def host_keys(directory):
    """Host public key files (regular files, as find would list them) and their lines."""
    try:
        names = sorted(n for n in os.listdir(directory) if fnmatch.fnmatch(n, "ssh_host_*_key.pub"))
    except OSError:
        names = []
    files, lines = [], []
    for name in names:
        path = os.path.join(directory, name)
        data = read_bytes(path)
        if data is None:
            continue
        files.append(path)
        lines.extend(text_lines(data))
    return files, lines


def user_entry(name):
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return None
    return {"uid": pw.pw_uid, "gid": pw.pw_gid, "home": pw.pw_dir}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            users=dict(type="list", elements="str", default=[]),
            packages=dict(type="list", elements="str", default=[]),
            key_name=dict(type="str"),
            block_files=dict(type="list", elements="str", default=[]),
            marker=dict(type="str", default="# {mark} ANSIBLE MANAGED BLOCK mlops_ssh"),
            host_keys=dict(type="bool", default=False),
            host_keys_dir=dict(type="path", default="/etc/ssh"),
            authorized_keys=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params

    def run(argv):
        """rc and stdout of a read-only command; rc None when it cannot be run."""
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False)
        except OSError:
            return None, ""
        return proc.returncode, proc.stdout.decode("utf-8", "replace").strip()

    packages = {}
    for name in p["packages"]:
        rc, status = run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}", name])
        status = status if rc == 0 else ""
        packages[name] = {"status": status, "installed": status[1:2] == "i" and status[2:3] in ("", " ")}

    users = {name: user_entry(name) for name in p["users"]}
    existing = [name for name in p["users"] if users[name] is not None]
    homes = {
        name: probe_home(users[name]["home"], p["key_name"], p["block_files"], p["marker"],
                         p["authorized_keys"])
        for name in existing
    }
    key = {}
    if p["key_name"] and existing:
        key = key_info(os.path.join(users[existing[0]]["home"], ".ssh", p["key_name"]), run)

    files, lines = host_keys(p["host_keys_dir"]) if p["host_keys"] else ([], [])
    module.exit_json(changed=False, packages=packages, users=users, key=key, homes=homes,
                     host_keys=lines, host_key_files=files)


if __name__ == "__main__":
    main()
