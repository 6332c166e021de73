#!/usr/bin/python
# -*- coding: utf-8 -*-
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
    that runs C(pwd) (C(StrictHostKeyChecking=yes), C(UpdateHostKeys=no): nothing is written).
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
    description: systemd timer that makes the backups (an active timer that never ran excuses a missing backup).
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

import base64
import binascii
import errno
import fnmatch
import grp
import os
import posixpath
import pwd
import re
import shlex
import shutil
import socket
import sqlite3
import stat
import struct
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

from ansible.module_utils.basic import AnsibleModule

GIB = 1024**3
TOOLKIT_SERVER_FIX = "run the toolkit: ansible-playbook playbooks/tracking_server.yml"
TOOLKIT_KEYS_FIX = "ansible-playbook playbooks/keys.yml"
TOOLKIT_STORE_FIX = "ansible-playbook playbooks/artifact_store.yml"

# ----------------------------------------------------------------------------- findings


class Report:
    def __init__(self):
        self.findings = []

    def add(self, level, check, message, fix=""):
        self.findings.append({"level": level, "check": check, "message": message, "fix": fix if level != "ok" else ""})

    def ok(self, check, message):
        self.add("ok", check, message)

    def warn(self, check, message, fix):
        self.add("warn", check, message, fix)

    def error(self, check, message, fix):
        self.add("error", check, message, fix)

    def lines(self):
        out = []
        for f in self.findings:
            line = f"[{f['level'].upper()}] {f['check']}: {f['message']}"
            if f["fix"]:
                line += f" -> {f['fix']}"
            out.append(line)
        return out

    def summary(self):
        counts = {"error": 0, "warn": 0, "ok": 0}
        for f in self.findings:
            counts[f["level"]] += 1
        return counts


# ----------------------------------------------------------------------------- small helpers


def read_text(path, limit=1 << 20):
    try:
        with open(path, "rb") as handle:
            return handle.read(limit).decode("utf-8", "replace")
    except OSError:
        return None


def read_bytes(path, limit=1 << 20):
    try:
        with open(path, "rb") as handle:
            return handle.read(limit)
    except OSError:
        return None


def lstat(path):
    try:
        return os.lstat(path)
    except OSError:
        return None


def user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def owner_text(st):
    return f"{user_name(st.st_uid)}:{group_name(st.st_gid)} {stat.S_IMODE(st.st_mode):04o}"


def human_bytes(value):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{value} B"
        value /= 1024.0
    return str(value)


def human_age(seconds):
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


class Identity:
    """A local account as the kernel sees it (uid, primary and supplementary groups)."""

    def __init__(self, name):
        self.name = name
        self.pw = None
        self.gids = set()
        try:
            self.pw = pwd.getpwnam(name)
        except KeyError:
            return
        self.gids = {self.pw.pw_gid}
        for group in grp.getgrall():
            if name in group.gr_mem:
                self.gids.add(group.gr_gid)

    @property
    def exists(self):
        return self.pw is not None

    @property
    def uid(self):
        return self.pw.pw_uid if self.pw else -1

    @property
    def home(self):
        return self.pw.pw_dir if self.pw else f"/home/{self.name}"

    def can(self, st, want):
        """Permission bits (r=4, w=2, x=1) of ``st`` granted to this account (ACLs ignored)."""
        if self.uid == 0:
            if want & 1 and not stat.S_ISDIR(st.st_mode):
                return bool(st.st_mode & 0o111)
            return True
        mode = st.st_mode
        if st.st_uid == self.uid:
            bits = (mode >> 6) & 7
        elif st.st_gid in self.gids:
            bits = (mode >> 3) & 7
        else:
            bits = mode & 7
        return bits & want == want


def run(module, argv, data=None, timeout=30):
    """Run a read-only command; never raises. Returns (rc, stdout, stderr)."""
    try:
        proc = subprocess.run(
            argv,
            input=data,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"},
        )
        return proc.returncode, proc.stdout, proc.stderr
    except FileNotFoundError:
        return 127, "", f"{argv[0]}: not found"
    except subprocess.TimeoutExpired:
        return 124, "", f"timed out after {timeout} s"
    except OSError as exc:
        return 126, "", str(exc)


def disk_check(report, check, path, min_percent, min_gib):
    probe = path
    while probe and not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    try:
        usage = shutil.disk_usage(probe or "/")
    except OSError as exc:
        report.warn(check, f"cannot read the free space of {path}: {exc}", "check the path exists")
        return
    percent = 100.0 * usage.free / usage.total if usage.total else 0.0
    text = f"{human_bytes(usage.free)} free of {human_bytes(usage.total)} ({percent:.0f}%) on the filesystem of {path}"
    if percent < min_percent or usage.free < min_gib * GIB:
        report.warn(
            check,
            text + f" (below {min_percent:g}% or {min_gib:g} GiB)",
            "free space or grow the filesystem: SQLite and uploads fail with 'database or disk is full'",
        )
    else:
        report.ok(check, text)


# ----------------------------------------------------------------------------- sftp:// URIs


def split_sftp_uri(uri, fallback_user):
    """Analyse an sftp:// URI the way MLflow's stores see it.

    Returns a dict: problems [(level, text)], user, host, port (int or None), path,
    corrected (the URI to use instead, or None), effective (what MLflow would really connect to).
    """
    result = {"problems": [], "user": None, "host": None, "port": None, "path": "", "corrected": None,
              "password": False}
    problems = result["problems"]
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):(/*)(.*)$", uri.strip())
    if not match:
        problems.append(("error", "not a URI"))
        return result
    scheme, slashes, rest = match.group(1).lower(), match.group(2), match.group(3)
    if scheme != "sftp":
        problems.append(("error", f"scheme {scheme}: is not sftp:"))
    lost_netloc = False
    if len(slashes) >= 3:
        lost_netloc = True
        first = rest.split("/", 1)[0]
        if "@" in first or ":" in first:
            problems.append((
                "error",
                f"three slashes after 'sftp:' make the host part empty, so '{first}' became the first "
                "directory of the path: MLflow connects to localhost as the server's own user and writes "
                f"below '/{rest}'",
            ))
            netloc, _, path = rest.partition("/")
            path = "/" + path
        else:
            problems.append((
                "error",
                "three slashes after 'sftp:' leave out user and host: MLflow connects to localhost as the "
                "server's own user",
            ))
            netloc, path = "", "/" + rest
    elif len(slashes) != 2:
        problems.append(("error", "'sftp:' must be followed by exactly two slashes"))
        netloc, _, path = rest.partition("/")
        path = "/" + path if path else ""
    else:
        netloc, sep, path = rest.partition("/")
        path = sep + path
    # user[:password]@host[:port][:path] (scp style leftovers land after a second colon)
    userinfo, at, hostport = netloc.rpartition("@")
    if not at:
        userinfo, hostport = "", netloc
    if ":" in userinfo:
        result["password"] = True
        problems.append(("warn", "a password is written in the URI (visible in the process list)"))
        userinfo = userinfo.split(":", 1)[0]
    host, port_text = hostport, None
    if hostport.startswith("["):
        close = hostport.find("]")
        host = hostport[1:close] if close > 0 else hostport
        after = hostport[close + 1:] if close > 0 else ""
        if after.startswith(":"):
            port_text = after[1:]
    elif ":" in hostport:
        host, port_text = hostport.split(":", 1)
    port = None
    scp_path = None
    if port_text is not None:
        if port_text == "":
            problems.append(("error", f"empty port after '{host}:' (the URI reads host:/path, scp style)"))
        elif re.fullmatch(r"[0-9]{1,5}", port_text) and 0 < int(port_text) < 65536:
            port = int(port_text)
        elif re.fullmatch(r"[0-9]{1,5}:.*", port_text):
            port = int(port_text.split(":", 1)[0])
            scp_path = port_text.split(":", 1)[1]
            problems.append(("error", f"a second ':' after the port ({port_text}): scp-style path"))
        else:
            scp_path = port_text
            problems.append((
                "error",
                f"'{host}:{port_text}' is scp style: the part after ':' must be a port number and the "
                "path must start with '/'",
            ))
    elif host:
        problems.append(("warn", "no port: the stores assume 22; write it out so every client agrees"))
    if scp_path is not None:
        path = scp_path + path
    if not host:
        if not lost_netloc:
            problems.append(("error", "no host: MLflow connects to localhost"))
    if not userinfo and host:
        problems.append(("warn", f"no user: MLflow logs in as the local user running it ({fallback_user})"))
    user = userinfo or None
    # path
    home_guess = "/root" if (user or fallback_user) == "root" else f"/home/{user or fallback_user}"
    fixed_path = path
    if not path or path == "/":
        problems.append(("error", "no directory path after the host"))
        fixed_path = posixpath.join(home_guess, "mlflow/mlruns")
    elif path.startswith("~") or path.startswith("/~"):
        problems.append(("error", "'~' is not expanded over SFTP: the path must be absolute"))
        tail = path.lstrip("/")[1:]
        named, _, rest_path = tail.partition("/")
        base = ("/root" if named == "root" else f"/home/{named}") if named else home_guess
        fixed_path = posixpath.join(base, rest_path) if rest_path else base
    elif not path.startswith("/"):
        problems.append(("error", f"relative path '{path}': MLflow needs an absolute path"))
        fixed_path = posixpath.join(home_guess, path)
    elif any(seg in (".", "..") for seg in path.split("/")):
        problems.append(("error", "'.' or '..' in the path"))
        fixed_path = posixpath.normpath(path)
    if len(fixed_path) > 1:
        fixed_path = fixed_path.rstrip("/")
    result.update(user=user, host=host or None, port=port, path=fixed_path)
    if host:
        shown_host = f"[{host}]" if ":" in host else host
        result["corrected"] = f"sftp://{user or fallback_user}@{shown_host}:{port or 22}{fixed_path}"
    return result


# ----------------------------------------------------------------------------- SSH material

KEY_TYPE_NAMES = {
    "ssh-rsa": "rsa",
    "ssh-dss": "dsa",
    "ssh-ed25519": "ed25519",
    "ecdsa-sha2-nistp256": "ecdsa",
    "ecdsa-sha2-nistp384": "ecdsa",
    "ecdsa-sha2-nistp521": "ecdsa",
    "sk-ssh-ed25519@openssh.com": "ed25519-sk",
    "sk-ecdsa-sha2-nistp256@openssh.com": "ecdsa-sk",
}
SSH_DIR_SKIP = {"known_hosts", "known_hosts.old", "config", "authorized_keys", "authorized_keys2", "environment", "rc"}


def _ssh_string(blob, offset):
    if offset + 4 > len(blob):
        raise ValueError("truncated")
    (length,) = struct.unpack(">I", blob[offset:offset + 4])
    end = offset + 4 + length
    if end > len(blob):
        raise ValueError("truncated")
    return blob[offset + 4:end], end


def public_blob_info(blob):
    """(type name, bits) of an SSH public key blob."""
    try:
        ktype, offset = _ssh_string(blob, 0)
        name = ktype.decode("ascii", "replace")
        bits = None
        if name == "ssh-rsa":
            _exp, offset = _ssh_string(blob, offset)
            modulus, offset = _ssh_string(blob, offset)
            bits = int.from_bytes(modulus, "big").bit_length()
        elif name.startswith("ecdsa-sha2-nistp"):
            bits = int(name.rsplit("nistp", 1)[1])
        elif name == "ssh-ed25519":
            bits = 256
        return KEY_TYPE_NAMES.get(name, name), bits
    except (ValueError, IndexError):
        return "unknown", None


def private_key_info(path):
    """Describe a private key file, or None when the file is not one. Never returns key material."""
    data = read_bytes(path, 64 * 1024)
    if not data or b"PRIVATE KEY-----" not in data.split(b"\n", 1)[0]:
        return None
    text = data.decode("ascii", "replace")
    info = {"path": path, "type": "unknown", "bits": None, "encrypted": False, "format": "pem", "public": None}
    head = text.split("\n", 1)[0]
    if "OPENSSH PRIVATE KEY" in head:
        info["format"] = "openssh"
        body = "".join(line for line in text.splitlines()[1:] if line and not line.startswith("-----"))
        try:
            blob = base64.b64decode(body)
            magic = b"openssh-key-v1\x00"
            if blob.startswith(magic):
                offset = len(magic)
                cipher, offset = _ssh_string(blob, offset)
                _kdf, offset = _ssh_string(blob, offset)
                _kdfopts, offset = _ssh_string(blob, offset)
                offset += 4  # number of keys
                pub, offset = _ssh_string(blob, offset)
                info["encrypted"] = cipher != b"none"
                info["type"], info["bits"] = public_blob_info(pub)
                info["public"] = base64.b64encode(pub).decode("ascii")
        except (ValueError, TypeError, binascii.Error):
            pass
    else:
        for marker, ktype in (("RSA", "rsa"), ("DSA", "dsa"), ("EC", "ecdsa")):
            if f"BEGIN {marker} PRIVATE KEY" in head:
                info["type"] = ktype
        if "ENCRYPTED" in text[:400]:
            info["encrypted"] = True
        if "BEGIN PRIVATE KEY" in head:
            info["type"] = "pkcs8"
    pub_text = read_text(path + ".pub", 64 * 1024)
    if pub_text:
        fields = pub_text.split()
        if len(fields) >= 2:
            try:
                pub_blob = base64.b64decode(fields[1])
                ptype, bits = public_blob_info(pub_blob)
                if info["public"] is None:
                    info["public"] = fields[1]
                    info["type"], info["bits"] = ptype, bits
                elif info["public"] != fields[1]:
                    info["pub_mismatch"] = True
            except (ValueError, binascii.Error):
                pass
    return info


def describe_key(info, home):
    name = info["path"]
    if name.startswith(home + "/"):
        name = "~" + name[len(home):]
    text = f"{name} ({info['type']}{' ' + str(info['bits']) if info['bits'] and info['type'] == 'rsa' else ''}"
    if info["encrypted"]:
        text += ", passphrase"
    return text + ")"


def host_matches(patterns, host):
    matched = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if fnmatch.fnmatchcase(host, pattern.lstrip("!")):
            if negated:
                return False
            matched = True
    return matched


def ssh_config_lookup(path, host):
    """First-value-wins view of ~/.ssh/config for HOST (Host blocks only; Match/Include noted)."""
    text = read_text(path)
    result = {"identityfile": [], "_entries": [], "_unsupported": []}
    if text is None:
        return None
    active = True
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"^(\S+?)(?:\s*=\s*|\s+)(.*)$", line)
        if not match:
            continue
        key, value = match.group(1).lower(), match.group(2).strip()
        if key == "host":
            patterns = shlex.split(value) if value else []
            active = host_matches(patterns, host)
            if active and any(p not in ("*",) for p in patterns):
                result["_entries"].append(value)
            continue
        if key == "match":
            active = False
            result["_unsupported"].append("Match")
            continue
        if key == "include":
            result["_unsupported"].append("Include")
            continue
        if not active:
            continue
        value = value.strip('"')
        if key == "identityfile":
            result["identityfile"].append(value)
        else:
            result.setdefault(key, value)
    return result


def expand_ssh_path(value, home, local_user, host, remote_user):
    value = value.strip('"')
    if value.startswith("~/"):
        value = home + value[1:]
    elif value == "~":
        value = home
    for token, repl in (("%d", home), ("%u", local_user), ("%h", host), ("%r", remote_user or local_user), ("%%", "%")):
        value = value.replace(token, repl)
    if not value.startswith("/"):
        value = os.path.join(home, value)
    return value


def known_hosts_has(module, path, name):
    """True/False whether known_hosts PATH lists NAME (plain or hashed); None if unreadable."""
    if not os.path.isfile(path):
        return False
    rc, out, _err = run(module, ["ssh-keygen", "-F", name, "-f", path], timeout=10)
    if rc == 127:  # no ssh-keygen: plain-text lines only
        text = read_text(path) or ""
        for line in text.splitlines():
            names = line.split()[0].split(",") if line.split() else []
            if name in names:
                return True
        return False
    return rc == 0 and "found" in out


# ----------------------------------------------------------------------------- processes


def iter_processes():
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        raw = read_bytes(f"/proc/{entry}/cmdline", 64 * 1024)
        if not raw:
            continue
        argv = [part.decode("utf-8", "replace") for part in raw.rstrip(b"\x00").split(b"\x00")]
        yield int(entry), argv


def process_uid(pid):
    text = read_text(f"/proc/{pid}/status") or ""
    match = re.search(r"^Uid:\s+(\d+)\s+(\d+)", text, re.M)
    return int(match.group(2)) if match else -1


def process_ppid(pid):
    text = read_text(f"/proc/{pid}/status") or ""
    match = re.search(r"^PPid:\s+(\d+)", text, re.M)
    return int(match.group(1)) if match else 0


def process_env(pid, wanted):
    raw = read_bytes(f"/proc/{pid}/environ", 1 << 20) or b""
    env = {}
    for item in raw.split(b"\x00"):
        key, sep, value = item.partition(b"=")
        if sep and key.decode("utf-8", "replace") in wanted:
            env[key.decode()] = value.decode("utf-8", "replace")
    return env


def process_cwd(pid):
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


def mlflow_cli_index(argv):
    """Index of the first argument after `mlflow server`, or None."""
    for i, token in enumerate(argv[:-1]):
        is_mlflow = os.path.basename(token) == "mlflow" or (token == "mlflow" and i > 0 and argv[i - 1] == "-m")
        if is_mlflow and argv[i + 1] == "server":
            return i + 2
    return None


def is_mlflow_worker(argv):
    return any(token.startswith("mlflow.server") or "mlflow.server." in token for token in argv)


SERVER_OPTIONS = {
    "--backend-store-uri": "backend",
    "--default-artifact-root": "artifact_root",
    "--artifacts-destination": "destination",
    "--host": "host",
    "-h": "host",
    "--port": "port",
    "-p": "port",
    "--app-name": "app_name",
    "--workers": "workers",
    "-w": "workers",
}
SERVER_FLAGS = {"--serve-artifacts": ("serve", True), "--no-serve-artifacts": ("serve", False),
                "--artifacts-only": ("artifacts_only", True)}
SERVER_ENV = {
    "MLFLOW_BACKEND_STORE_URI": "backend",
    "MLFLOW_DEFAULT_ARTIFACT_ROOT": "artifact_root",
    "MLFLOW_ARTIFACTS_DESTINATION": "destination",
    "MLFLOW_HOST": "host",
    "MLFLOW_PORT": "port",
    "MLFLOW_SERVE_ARTIFACTS": "serve",
}
WORKER_ENV = {
    "_MLFLOW_SERVER_FILE_STORE": "backend",
    "_MLFLOW_SERVER_ARTIFACT_ROOT": "artifact_root",
    "_MLFLOW_SERVER_ARTIFACT_DESTINATION": "destination",
    "_MLFLOW_SERVER_SERVE_ARTIFACTS": "serve",
}


def parse_server_args(args):
    conf = {}
    i = 0
    while i < len(args):
        token = args[i]
        name, eq, value = token.partition("=")
        if name in SERVER_OPTIONS:
            if not eq:
                value = args[i + 1] if i + 1 < len(args) else ""
                i += 1
            conf[SERVER_OPTIONS[name]] = value
        elif token in SERVER_FLAGS:
            key, flag = SERVER_FLAGS[token]
            conf[key] = flag
        i += 1
    return conf


def truthy(value):
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def redact_uri(uri):
    return re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", uri or "")


# ----------------------------------------------------------------------------- python env


def python_site_dirs(module, argv):
    """site-packages directories of the Python that runs (or would run) MLflow."""
    candidates = []
    for token in argv[:2]:
        if token.startswith("/"):
            candidates.append(token)
    for token in candidates:
        bindir = os.path.dirname(token)
        prefix = os.path.dirname(bindir)
        if os.path.isfile(os.path.join(prefix, "pyvenv.cfg")):
            dirs = [d for pattern in ("lib/python3*/site-packages", "lib64/python3*/site-packages")
                    for d in sorted(_glob(os.path.join(prefix, pattern)))]
            if dirs:
                return prefix, dirs
    # Not a venv: ask that interpreter (read-only: -B writes no bytecode, -c imports nothing else).
    python = None
    for token in candidates:
        base = os.path.basename(token)
        if base.startswith("python") and os.access(token, os.X_OK):
            python = token
            break
        head = read_text(token, 256) or ""
        if head.startswith("#!"):
            interp = head[2:].split("\n", 1)[0].split()
            if interp and os.path.basename(interp[0]).startswith("python"):
                python = interp[0]
                break
    if python:
        rc, out, _err = run(module, [python, "-B", "-c", "import sys; print('\\n'.join(sys.path))"], timeout=20)
        if rc == 0:
            dirs = [d for d in out.splitlines() if d.endswith(("site-packages", "dist-packages")) and os.path.isdir(d)]
            return os.path.dirname(os.path.dirname(python)), dirs
    return None, []


def _glob(pattern):
    import glob

    return glob.glob(pattern)


def inspect_python(site_dirs):
    info = {"mlflow": None, "paramiko": None, "pysftp": None, "plugin": None, "migrations": None}
    for site in site_dirs:
        try:
            names = os.listdir(site)
        except OSError:
            continue
        for name in names:
            lower = name.lower()
            if not lower.endswith((".dist-info", ".egg-info")):
                continue
            base = name.rsplit(".", 1)[0]
            dist, _, version = base.partition("-")
            dist = dist.lower().replace("-", "_")
            if dist == "mlflow" and info["mlflow"] is None:
                info["mlflow"] = version
            elif dist == "paramiko" and info["paramiko"] is None:
                info["paramiko"] = version
            elif dist == "pysftp" and info["pysftp"] is None:
                info["pysftp"] = version
            entry_points = read_text(os.path.join(site, name, "entry_points.txt"), 64 * 1024) or ""
            section = re.search(r"^\[mlflow\.artifact_repository\]\s*$(.*?)(?=^\[|\Z)", entry_points, re.M | re.S)
            if section and re.search(r"^\s*sftp\s*=", section.group(1), re.M):
                info["plugin"] = f"{dist} {version}".strip()
        versions = os.path.join(site, "mlflow", "store", "db_migrations", "versions")
        if info["migrations"] is None and os.path.isdir(versions):
            info["migrations"] = versions
    return info


def alembic_heads(versions_dir):
    revisions, parents = set(), set()
    try:
        names = os.listdir(versions_dir)
    except OSError:
        return set()
    for name in names:
        if not name.endswith(".py"):
            continue
        text = read_text(os.path.join(versions_dir, name), 256 * 1024) or ""
        rev = re.search(r"^revision\s*=\s*['\"]([0-9a-zA-Z_]+)['\"]", text, re.M)
        if not rev:
            continue
        revisions.add(rev.group(1))
        down = re.search(r"^down_revision\s*=\s*(.+)$", text, re.M)
        if down:
            parents.update(re.findall(r"['\"]([0-9a-zA-Z_]+)['\"]", down.group(1)))
    return revisions - parents


def version_tuple(text):
    return tuple(int(p) for p in re.findall(r"\d+", text or "")[:3])


# ----------------------------------------------------------------------------- network


def listening_sockets(port):
    found = []
    for path, family in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 6)):
        text = read_text(path) or ""
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 4 or fields[3] != "0A":
                continue
            addr_hex, port_hex = fields[1].split(":")
            if int(port_hex, 16) != port:
                continue
            raw = bytes.fromhex(addr_hex)
            if family == 4:
                addr = socket.inet_ntop(socket.AF_INET, raw[::-1])
            else:
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                addr = socket.inet_ntop(socket.AF_INET6, words)
            found.append(addr)
    return found


def is_local_address(host):
    """True when HOST resolves to an address of this machine (bind test: nothing is sent)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    for family, _type, _proto, _canon, sockaddr in infos:
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.bind((sockaddr[0], 0))
                return True
        except OSError:
            continue
    return False


# ----------------------------------------------------------------------------- systemd


def unit_properties(module, unit):
    rc, out, _err = run(module, ["systemctl", "show", unit, "--no-pager",
                                 "--property=LoadState,ActiveState,SubState,UnitFileState,User,"
                                 "WorkingDirectory,ExecStart,EnvironmentFiles,Environment,MainPID,FragmentPath"])
    if rc != 0:
        return None
    props = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        props[key] = value
    return props


def env_file_values(path):
    values = {}
    text = read_text(path) or ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("export "):
            line = line[7:]
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def unit_config(props):
    """Server configuration from the unit: ExecStart argv with ${VAR} from Environment(File)."""
    env = {}
    for item in shlex.split(props.get("Environment", "") or ""):
        key, sep, value = item.partition("=")
        if sep:
            env[key] = value
    for item in re.findall(r"(\S+) \(ignore_errors=\w+\)", props.get("EnvironmentFiles", "") or ""):
        env.update(env_file_values(item))
    match = re.search(r"argv\[\]=(.*?) ;", props.get("ExecStart", "") or "")
    argv = shlex.split(match.group(1)) if match else []

    def expand(token):
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), token)

    expanded = []
    for token in argv:
        whole = re.fullmatch(r"\$(\w+)", token)
        if whole:  # systemd splits an unbraced $VAR into words
            expanded.extend(env.get(whole.group(1), "").split())
        else:
            expanded.append(expand(token))
    return expanded, env


# ============================================================================= server checks


class ServerDoctor:
    def __init__(self, module):
        self.m = module
        self.p = module.params
        self.r = Report()
        self.discovered = {"source": "none", "pids": [], "targets": [], "public_keys": []}

    # ------------------------------------------------------------------ discovery
    def discover(self):
        mains, workers = [], []
        for pid, argv in iter_processes():
            if pid == os.getpid():
                continue
            idx = mlflow_cli_index(argv)
            if idx is not None:
                mains.append((pid, argv, idx))
            elif is_mlflow_worker(argv):
                workers.append((pid, argv))
        self.mains, self.workers = mains, workers
        self.props = unit_properties(self.m, self.p["unit"])
        conf, env = {}, {}
        self.main_pid = None
        self.cwd = None
        self.argv = []
        if mains:
            pid, argv, idx = mains[0]
            self.main_pid = pid
            self.argv = argv
            env = process_env(pid, set(SERVER_ENV) | {"HOME", "MLFLOW_SFTP_IDENTITY_FILES", "MLFLOW_SFTP_KNOWN_HOSTS"})
            for key, name in SERVER_ENV.items():
                if key in env:
                    conf[name] = env[key]
            conf.update(parse_server_args(argv[idx:]))
            self.cwd = process_cwd(pid)
            self.discovered["source"] = "process"
            # Workers carry the values MLflow resolved (defaults included).
            children = [w for w in workers if process_ppid(w[0]) == pid] or workers
            if children:
                wenv = process_env(children[0][0], set(WORKER_ENV))
                for key, name in WORKER_ENV.items():
                    if key in wenv and name not in conf:
                        conf[name] = wenv[key]
        elif workers:
            pid, argv = workers[0]
            self.main_pid = pid
            self.argv = argv
            wenv = process_env(pid, set(WORKER_ENV))
            for key, name in WORKER_ENV.items():
                if key in wenv:
                    conf[name] = wenv[key]
            conf.update({k: v for k, v in parse_server_args(argv).items() if k in ("host", "port")})
            self.cwd = process_cwd(pid)
            self.discovered["source"] = "process"
        elif self.props and self.props.get("LoadState") == "loaded":
            argv, env = unit_config(self.props)
            idx = mlflow_cli_index(argv)
            self.argv = argv
            for key, name in SERVER_ENV.items():
                if key in env:
                    conf[name] = env[key]
            if idx is not None:
                conf.update(parse_server_args(argv[idx:]))
            self.cwd = self.props.get("WorkingDirectory") or "/"
            self.cwd = self.cwd.lstrip("!-")
            if self.cwd == "~":
                self.cwd = Identity(self.props.get("User") or "root").home
            self.discovered["source"] = "unit"
        self.env = env
        conf.setdefault("host", "127.0.0.1")
        conf.setdefault("port", "5000")
        conf.setdefault("backend", "sqlite:///mlflow.db")
        if "serve" in conf:
            conf["serve"] = truthy(conf["serve"])
        else:
            conf["serve"] = True
        if not conf.get("artifact_root"):
            conf["artifact_root"] = "mlflow-artifacts:/" if conf["serve"] else "./mlruns"
        conf.setdefault("destination", "./mlartifacts")
        self.conf = conf
        if self.main_pid:
            self.proc_user = user_name(process_uid(self.main_pid))
        elif self.props and self.props.get("LoadState") == "loaded":
            self.proc_user = self.props.get("User") or "root"
        else:
            self.proc_user = None
        self.discovered.update(
            pids=[m[0] for m in mains] + [w[0] for w in workers],
            user=self.proc_user,
            cwd=self.cwd,
            backend_uri=redact_uri(conf["backend"]),
            default_artifact_root=redact_uri(conf["artifact_root"]),
            artifacts_destination=redact_uri(conf["destination"]) if conf["serve"] else None,
            port=conf["port"],
            host=conf["host"],
        )
        self.prefix, self.site_dirs = python_site_dirs(self.m, self.argv)
        self.py = inspect_python(self.site_dirs)
        self.discovered["python"] = dict(prefix=self.prefix, **{k: v for k, v in self.py.items() if k != "migrations"})

    # ------------------------------------------------------------------ process and service
    def check_process(self):
        mains, workers = self.mains, self.workers
        if not mains and not workers:
            if self.props and self.props.get("LoadState") == "loaded":
                self.r.error("process", f"no MLflow server process runs ({self.p['unit']} is "
                             f"{self.props.get('ActiveState')}/{self.props.get('SubState')})",
                             f"systemctl start {self.p['unit']}; journalctl -u {self.p['unit']} -n 50 for the reason")
            else:
                self.r.error("process", "no MLflow server process runs and there is no "
                             f"{self.p['unit']}", TOOLKIT_SERVER_FIX)
            return
        if not mains:
            self.r.warn("process", f"MLflow worker processes run (pids {[w[0] for w in workers][:5]}) but no "
                        "`mlflow server` parent: its arguments could not be read",
                        f"restart the server cleanly (systemctl restart {self.p['unit']})")
        else:
            extra = f" ({len(mains)} separate `mlflow server` commands run)" if len(mains) > 1 else ""
            self.r.ok("process", f"`mlflow server` runs as pid {mains[0][0]} with {len(workers)} worker "
                      f"process(es){extra}")
            if len(mains) > 1:
                self.r.warn("process", f"{len(mains)} `mlflow server` commands run (pids "
                            f"{[m[0] for m in mains]}); only pid {mains[0][0]} is diagnosed",
                            "stop the hand-started copies (kill PID) and keep the one from "
                            f"{self.p['unit']}")
        users = sorted({user_name(process_uid(pid)) for pid in self.discovered["pids"]})
        if "root" in users:
            self.r.error("process_user", f"MLflow runs as root (pids {self.discovered['pids'][:6]}): the database "
                         "and local artifacts it writes are root-owned, it uses root's ~/.ssh for SFTP, and a "
                         "bug in MLflow is a bug with root's rights",
                         f"run it as {self.p['account']} from a systemd unit (User={self.p['account']}); "
                         f"chown {self.p['account']}: the database first; {TOOLKIT_SERVER_FIX}")
        elif users and users != [self.p["account"]]:
            self.r.warn("process_user", f"MLflow runs as {', '.join(users)}, not as {self.p['account']}",
                        f"run it as {self.p['account']} (User= in {self.p['unit']})")
        elif users:
            self.r.ok("process_user", f"MLflow runs as {users[0]}")

    def check_service(self):
        props = self.props
        unit = self.p["unit"]
        loaded = bool(props) and props.get("LoadState") == "loaded"
        in_unit = False
        if self.main_pid:
            cgroup = read_text(f"/proc/{self.main_pid}/cgroup") or ""
            in_unit = f"/{unit}" in cgroup
        if not loaded:
            if props is None:
                self.r.warn("service", "systemctl is not usable here: unit state unknown",
                            "run the doctor on the host itself (systemd)")
                return
            msg = f"there is no {unit}"
            if self.main_pid:
                msg += f": the server (pid {self.main_pid}) was started by hand from a shell, so it stops at " \
                       "logout/reboot and nothing restarts it after a crash"
            self.r.warn("service", msg, f"install {unit} ({TOOLKIT_SERVER_FIX}) and stop the hand-started server")
            return
        active, enabled = props.get("ActiveState"), props.get("UnitFileState")
        if active != "active":
            self.r.error("service", f"{unit} is {active}/{props.get('SubState')}",
                         f"journalctl -u {unit} -n 50; systemctl restart {unit}")
        elif self.main_pid and not in_unit:
            self.r.warn("service", f"{unit} is active but the `mlflow server` on pid {self.main_pid} runs outside it "
                        "(started by hand)", f"kill {self.main_pid} and keep {unit} only")
        else:
            self.r.ok("service", f"{unit} is active (pid {props.get('MainPID')}) as user {props.get('User') or 'root'}")
        if enabled not in ("enabled", "enabled-runtime", "static", "alias", "indirect"):
            self.r.warn("service", f"{unit} is {enabled}: it does not start at boot", f"systemctl enable {unit}")
        elif active == "active":
            self.r.ok("service_enabled", f"{unit} is {enabled} (starts at boot)")

    def check_port_and_health(self):
        try:
            port = int(self.conf["port"])
        except ValueError:
            self.r.error("port", f"port '{self.conf['port']}' is not a number", "pass --port 5000")
            return
        expected = self.p["port"]
        if expected and expected != port:
            self.r.warn("port", f"the server uses port {port}, the inventory says {expected} (mlflow_port)",
                        "make them agree (mlflow_port, or --port of the server)")
        if not self.discovered["pids"]:
            return
        addrs = listening_sockets(port)
        if not addrs:
            self.r.error("port", f"nothing listens on TCP port {port}",
                         f"journalctl -u {self.p['unit']} -n 50 (another process may hold the port, or the server "
                         "is still starting: /health can take 15 s)")
            return
        bind = self.conf["host"]
        self.r.ok("port", f"TCP port {port} listens on {', '.join(sorted(set(addrs)))} (--host {bind})")
        if bind in ("0.0.0.0", "::", "") and self.conf.get("app_name") != "basic-auth":
            self.r.warn("exposure", f"--host {bind} without --app-name basic-auth: anyone who reaches port {port} "
                        "can read, change and delete every experiment",
                        "enable authentication (mlflow_auth_enabled: true) or bind to 127.0.0.1 behind a proxy")
        elif bind in ("0.0.0.0", "::", ""):
            self.r.ok("exposure", f"--host {bind} with --app-name basic-auth: the API asks for a login")
        else:
            self.r.ok("exposure", f"--host {bind}: reachable on that address only")
        target = "127.0.0.1" if bind in ("0.0.0.0", "::", "", "localhost") else bind
        if ":" in target:
            target = f"[{target}]"
        url = f"http://{target}:{port}/health"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        start = time.monotonic()
        try:
            with opener.open(url, timeout=5) as resp:
                body = resp.read(200).decode("utf-8", "replace").strip()
                status = resp.status
        except urllib.error.HTTPError as exc:
            status, body = exc.code, ""
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            self.r.error("health", f"GET {url} failed: {reason}",
                         f"journalctl -u {self.p['unit']} -n 50 (the server may still be starting: /health "
                         "answers 10-20 s after a start)")
            return
        took = time.monotonic() - start
        if status == 200:
            self.r.ok("health", f"GET {url} -> 200 {body[:20]} in {took:.2f} s")
        else:
            self.r.error("health", f"GET {url} -> HTTP {status}", f"journalctl -u {self.p['unit']} -n 50")

    # ------------------------------------------------------------------ artifact URI and store
    def artifact_uris(self):
        """(label, uri) pairs that MLflow really uses for artifacts."""
        uris = []
        root = self.conf["artifact_root"]
        if root.startswith("mlflow-artifacts:"):
            if self.conf["serve"]:
                uris.append(("--artifacts-destination", self.conf["destination"]))
        else:
            uris.append(("--default-artifact-root", root))
        return uris

    def check_artifact_uri(self):
        self.targets = []
        fallback_user = self.proc_user or "root"
        uris = self.artifact_uris()
        if self.conf["artifact_root"].startswith("mlflow-artifacts:") and not self.conf["serve"]:
            self.r.error("artifact_uri", "--default-artifact-root mlflow-artifacts:/ with --no-serve-artifacts: "
                         "no artifact can be stored", "drop --no-serve-artifacts or give an sftp:// root")
        for label, uri in uris:
            if not uri.lower().startswith("sftp:"):
                if uri.startswith(("/", "./", "file:")) or "://" not in uri:
                    path = uri[len("file://"):] if uri.startswith("file://") else uri
                    relative = not path.startswith("/")
                    if relative:
                        self.r.warn("artifact_uri", f"{label} {uri} is a path relative to the server's working "
                                    f"directory ({self.cwd or '?'})",
                                    "use an absolute sftp:// URI: sftp://mlops@HOST:22/home/mlops/mlflow/mlruns")
                    else:
                        self.r.warn("artifact_uri", f"{label} {uri} is a local directory: clients on other machines "
                                    "cannot reach it", "use sftp://mlops@HOST:22/home/mlops/mlflow/mlruns")
                else:
                    self.r.ok("artifact_uri", f"{label} {redact_uri(uri)} (not sftp://: SFTP checks skipped)")
                continue
            parsed = split_sftp_uri(uri, fallback_user)
            errors = [t for lvl, t in parsed["problems"] if lvl == "error"]
            warns = [t for lvl, t in parsed["problems"] if lvl == "warn"]
            fix = f"use {label} {parsed['corrected']}" if parsed["corrected"] else \
                "use sftp://mlops@HOST:22/ABSOLUTE/PATH"
            for text in errors:
                self.r.error("artifact_uri", f"{label} {redact_uri(uri)}: {text}", fix)
            for text in warns:
                self.r.warn("artifact_uri", f"{label} {redact_uri(uri)}: {text}", fix)
            if not errors and not warns:
                mode = "proxied (clients need no keys)" if label == "--artifacts-destination" else \
                    "direct (clients need keys and known_hosts too)"
                self.r.ok("artifact_uri", f"{label} {redact_uri(uri)}: well-formed; artifacts are {mode}")
            if parsed["host"]:
                host = parsed["host"]
                try:
                    socket.getaddrinfo(host, None)
                except OSError:
                    self.r.error("artifact_host", f"artifact host '{host}' does not resolve",
                                 "add it to DNS or /etc/hosts, or use its IP address in the URI")
                target = {
                    "uri": redact_uri(uri),
                    "label": label,
                    "user": parsed["user"] or fallback_user,
                    "host": host,
                    "port": parsed["port"] or 22,
                    "path": parsed["path"],
                    "corrected": parsed["corrected"],
                    "server": self.p["server_name"],
                    "local": is_local_address(host),
                }
                self.targets.append(target)
        self.discovered["targets"] = self.targets

    def store_kind(self):
        if self.py["plugin"]:
            return "plugin"
        if self.py["pysftp"]:
            return "pysftp"
        return "none"

    def check_store(self):
        if not self.targets:
            return
        if not self.site_dirs:
            self.r.warn("sftp_store", "could not find the Python environment of the server: the SFTP store in use "
                        "is unknown", "run the server from a venv (the toolkit uses /opt/mlflow)")
            return
        kind = self.store_kind()
        where = self.prefix or "?"
        paramiko = self.py["paramiko"]
        if kind == "plugin":
            self.r.ok("sftp_store", f"sftp:// goes through the plugin {self.py['plugin']} in {where} "
                      f"(paramiko {paramiko}): any OpenSSH key type, strict known_hosts, reconnects")
        elif kind == "pysftp":
            if paramiko and version_tuple(paramiko) >= (4,):
                self.r.error("sftp_store", f"MLflow's stock store uses pysftp {self.py['pysftp']} but paramiko "
                             f"{paramiko} is installed in {where}: `import pysftp` fails (DSSKey) and every "
                             "artifact access returns HTTP 500",
                             f"{where}/bin/pip install 'paramiko<4', or install the toolkit's sftp plugin "
                             f"({TOOLKIT_SERVER_FIX})")
            else:
                self.r.warn("sftp_store", f"MLflow's stock pysftp store is in use ({where}, pysftp "
                            f"{self.py['pysftp']}, paramiko {paramiko}): RSA keys only, host keys looked up by bare "
                            "name, and after the SSH sessions drop (artifact host reboot) uploads fail until "
                            "MLflow is restarted",
                            f"install the toolkit's mlflow-sftp-store plugin ({TOOLKIT_SERVER_FIX})")
        else:
            self.r.error("sftp_store", f"neither pysftp nor an sftp plugin is installed in {where}: every sftp:// "
                         "artifact access fails", f"{TOOLKIT_SERVER_FIX} (installs the sftp plugin)")

    # ------------------------------------------------------------------ keys, known_hosts, ssh config, login
    def accounts(self):
        names = []
        for name in [self.proc_user] + list(self.p["key_accounts"]):
            if name and name not in names:
                names.append(name)
        return names

    def check_ssh(self):
        seen = set()
        for target in self.targets:
            key = (target["host"], target["port"], target["user"])
            if key in seen:
                continue
            seen.add(key)
            for account in self.accounts():
                self.check_account_ssh(account, target)

    def usable(self, info, consumer):
        """(ok, reason) whether CONSUMER (pysftp, plugin, openssh) can load key INFO."""
        if info["encrypted"]:
            return False, "it has a passphrase (a service cannot type it)"
        if consumer == "pysftp" and info["type"] not in ("rsa", "dsa"):
            return False, f"pysftp loads only RSA keys, this one is {info['type']}"
        if consumer == "pysftp" and info["type"] == "dsa" and version_tuple(self.py["paramiko"]) >= (4,):
            return False, "DSA keys need paramiko < 4"
        if consumer == "plugin" and info["type"] not in ("rsa", "ed25519", "ecdsa"):
            return False, f"{info['type']} keys are not supported by paramiko"
        return True, ""

    def check_account_ssh(self, account, target):
        ident = Identity(account)
        required = account in (self.proc_user, self.p["account"])
        role_text = "runs the server" if account == self.proc_user else (
            "service account" if account == self.p["account"] else "optional")
        tag = f"[{account}]"
        if not ident.exists:
            if required:
                self.r.error(f"account{tag}", f"account {account} does not exist",
                             "ansible-playbook playbooks/accounts.yml")
            return
        home = ident.home
        sshdir = os.path.join(home, ".ssh")
        host, port = target["host"], target["port"]
        cfg_path = os.path.join(sshdir, "config")
        cfg = ssh_config_lookup(cfg_path, host)
        hostname = (cfg or {}).get("hostname", host) if cfg else host
        keys = []
        try:
            for name in sorted(os.listdir(sshdir)):
                if name.endswith(".pub") or name in SSH_DIR_SKIP:
                    continue
                full = os.path.join(sshdir, name)
                if os.path.isfile(full):
                    info = private_key_info(full)
                    if info:
                        keys.append(info)
        except OSError:
            pass
        if not keys and not required:
            self.r.ok(f"keys{tag}", f"{account} ({role_text}) has no SSH key: not needed, the server runs as "
                      f"{self.proc_user}")
            return
        level = "error" if required else "warn"
        if not keys:
            self.r.add(level, f"keys{tag}", f"{account} ({role_text}) has no SSH private key in {sshdir}",
                       f"{TOOLKIT_KEYS_FIX} (or as {account}: ssh-keygen -t ed25519 -N '' -f "
                       f"~/.ssh/id_mlflow_sftp, then authorize the .pub for {target['user']} on {host})")
            return
        self.r.ok(f"keys{tag}", f"{account} ({role_text}) has {len(keys)} key(s): "
                  + ", ".join(describe_key(k, home) for k in keys))
        for info in keys:
            st = lstat(info["path"])
            if st and (stat.S_IMODE(st.st_mode) & 0o077 or st.st_uid != ident.uid):
                self.r.add(level, f"keys{tag}", f"{describe_key(info, home)} is {owner_text(st)}: OpenSSH refuses "
                           "a private key others can read or that the account does not own",
                           f"chown {account}: {info['path']} && chmod 0600 {info['path']}")
            if info.get("pub_mismatch"):
                self.r.warn(f"keys{tag}", f"{info['path']}.pub does not belong to {info['path']}",
                            f"ssh-keygen -y -f {info['path']} > {info['path']}.pub")
        by_path = {k["path"]: k for k in keys}

        # ssh config and the key the store would take
        configured = [expand_ssh_path(v, home, account, hostname, target["user"]) for v in (cfg or {}).get(
            "identityfile", [])]
        if cfg is None:
            cfg_text = f"no {cfg_path}"
        elif cfg["_entries"]:
            cfg_text = f"Host {cfg['_entries'][0]} in {cfg_path}"
        else:
            cfg_text = f"no Host entry for {host} in {cfg_path}"
        if cfg and cfg["_entries"]:
            details = [f"IdentityFile {', '.join(configured)}" if configured else "no IdentityFile"]
            for opt in ("hostname", "user", "port"):
                if opt in cfg:
                    details.append(f"{opt.capitalize()} {cfg[opt]}")
            missing = [p for p in configured if not os.path.exists(p)]
            if missing:
                self.r.add(level, f"ssh_config{tag}", f"{cfg_text} names IdentityFile {', '.join(missing)}, which "
                           "does not exist", f"fix the IdentityFile line or create the key ({TOOLKIT_KEYS_FIX})")
            elif not configured:
                self.r.warn(f"ssh_config{tag}", f"{cfg_text} has no IdentityFile: the default key names are tried",
                            f"add 'IdentityFile ~/.ssh/id_mlflow_sftp' under that Host ({TOOLKIT_KEYS_FIX})")
            else:
                self.r.ok(f"ssh_config{tag}", f"{cfg_text}: " + "; ".join(details))
            if "user" in cfg and cfg["user"] != target["user"]:
                self.r.warn(f"ssh_config{tag}", f"{cfg_text} says User {cfg['user']} but the URI logs in as "
                            f"{target['user']}", "make them agree")
            if "port" in cfg and str(cfg["port"]) != str(port):
                self.r.warn(f"ssh_config{tag}", f"{cfg_text} says Port {cfg['port']} but the URI uses {port}",
                            "make them agree")
        else:
            self.r.ok(f"ssh_config{tag}", f"{cfg_text}: the default key names are used "
                      f"(the toolkit writes an entry with IdentityFile ~/.ssh/id_mlflow_sftp)")
        if cfg and cfg["_unsupported"]:
            self.r.ok(f"ssh_config{tag}", f"{cfg_path} uses {', '.join(sorted(set(cfg['_unsupported'])))}, which "
                      "this check does not follow")

        kind = self.store_kind() if account == self.proc_user else (
            "plugin" if self.store_kind() == "plugin" else "pysftp")
        if kind == "pysftp":
            if configured:
                chosen = [configured[0]]
            else:
                chosen = [p for p in (os.path.join(sshdir, "id_rsa"), os.path.join(sshdir, "id_dsa"))
                          if os.path.exists(p)][:1]
            store_name = "MLflow's pysftp store"
        else:
            defaults = [os.path.join(sshdir, n) for n in ("id_ed25519", "id_ecdsa", "id_rsa")]
            ids_only = str((cfg or {}).get("identitiesonly", "no")).lower() == "yes"
            chosen = (configured or defaults) if ids_only else configured + defaults
            chosen = [p for p in chosen if os.path.exists(p)]
            store_name = "the sftp plugin" if kind == "plugin" else "an SFTP client"
        consumer = "pysftp" if kind == "pysftp" else "plugin"
        usable, reasons = [], []
        for path in chosen:
            info = by_path.get(path) or private_key_info(path)
            if not info:
                reasons.append(f"{path} is not a private key")
                continue
            ok, why = self.usable(info, consumer)
            if ok:
                usable.append(info)
            else:
                reasons.append(f"{describe_key(info, home)}: {why}")
        if usable:
            first = usable[0]
            self.r.ok(f"key_in_use{tag}", f"{store_name} logs in to {target['user']}@{host}:{port} with "
                      f"{describe_key(first, home)}")
            if first.get("public"):
                self.discovered["public_keys"].append({"account": account, "host": host, "type": first["type"],
                                                       "public": first["public"], "path": first["path"]})
        else:
            why = "; ".join(reasons) if reasons else (
                "no IdentityFile for this host and no ~/.ssh/id_rsa" if kind == "pysftp"
                else "no IdentityFile for this host and no default key")
            fix = (f"give {account} an RSA key (pysftp loads no other type) or install the toolkit's sftp plugin "
                   f"({TOOLKIT_SERVER_FIX})") if kind == "pysftp" else TOOLKIT_KEYS_FIX
            self.r.add(level, f"key_in_use{tag}", f"{store_name} has no usable key for {target['user']}@{host}: "
                       f"{why}", fix)

        # known_hosts
        files = [os.path.join(sshdir, "known_hosts")]
        for extra in str((cfg or {}).get("userknownhostsfile", "")).split():
            path = expand_ssh_path(extra, home, account, hostname, target["user"])
            if path not in files:
                files.append(path)
        global_file = "/etc/ssh/ssh_known_hosts"
        bare, bracket = hostname, f"[{hostname}]:{port}"
        have_bare = [f for f in files if known_hosts_has(self.m, f, bare)]
        have_bracket = [f for f in files if port != 22 and known_hosts_has(self.m, f, bracket)]
        global_bare = known_hosts_has(self.m, global_file, bare)
        global_bracket = port != 22 and known_hosts_has(self.m, global_file, bracket)
        needs = []
        if kind == "pysftp" and not known_hosts_has(self.m, files[0], bare):
            needs.append(f"'{bare}' (pysftp looks up the bare name, in ~/.ssh/known_hosts only)")
        elif port == 22 and not (have_bare or global_bare):
            needs.append(f"'{bare}'")
        if port != 22 and not (have_bracket or global_bracket):
            needs.append(f"'{bracket}' (OpenSSH's form for port {port})")
        forms = ([f"'{bare}'"] if have_bare else []) + ([f"'{bracket}'"] if have_bracket else [])
        if global_bare or global_bracket:
            forms.append(global_file)
        if needs:
            scan = f"ssh-keyscan -p {port} {hostname}"
            self.r.add(level, f"known_hosts{tag}", f"{files[0]} has no host key for {' nor '.join(needs)}: "
                       f"{store_name} and sftp refuse the connection ('No hostkey for host {hostname} found' / "
                       "'Host key verification failed')",
                       f"{TOOLKIT_KEYS_FIX}, or as {account}: {scan}, compare the fingerprint with the artifact "
                       f"host's (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub there), then append the line"
                       + (f" for both '{bare}' and '{bracket}'" if port != 22 else "") + " to ~/.ssh/known_hosts")
        else:
            self.r.ok(f"known_hosts{tag}", f"host key of {hostname} listed as {', '.join(forms)}")

        # SFTP login (pwd only)
        if self.p["sftp_login"] and account in (self.proc_user, self.p["account"]) and os.path.isdir(sshdir):
            self.sftp_login(account, ident, target, tag)

    def sftp_login(self, account, ident, target, tag):
        host, port, user = target["host"], target["port"], target["user"]
        argv = ["runuser", "-u", account, "--", "env", f"HOME={ident.home}", "sftp", "-b", "-", "-P", str(port),
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no",
                "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", f"{user}@{host}"]
        if account == "root":
            argv = argv[argv.index("env") + 2:]
        timeout = self.p["sftp_timeout"]
        rc, out, err = run(self.m, argv, data="pwd\n", timeout=timeout)
        where = f"{user}@{host}:{port}"
        if rc == 0 and "Remote working directory" in out:
            cwd = out.split("Remote working directory:", 1)[1].split("\n", 1)[0].strip()
            self.r.ok(f"sftp_login{tag}", f"{account} logs in to {where} over SFTP (remote directory {cwd})")
            return
        lines = [ln.strip() for ln in (err + "\n" + out).splitlines() if ln.strip()]
        telling = [ln for ln in lines if re.search(
            r"verification failed|Permission denied|Could not resolve|refused|timed out|No .*host key|"
            r"REMOTE HOST IDENTIFICATION|not found", ln)]
        last = (telling or lines or [f"exit {rc}"])[0]
        if "Host key verification failed" in err or "No ED25519 host key" in err or "host key" in err.lower():
            fix = f"add the artifact host's key to ~{account}/.ssh/known_hosts ({TOOLKIT_KEYS_FIX})"
            why = "host key not in known_hosts"
        elif "Permission denied" in err:
            fix = (f"authorize {account}'s public key in ~{user}/.ssh/authorized_keys on {host} ({TOOLKIT_KEYS_FIX}); "
                   "check the doctor's findings for the artifact host (locked account, StrictModes)")
            why = "the key is refused"
        elif "Could not resolve" in err:
            fix = f"make {host} resolvable (DNS, /etc/hosts) or use its IP address"
            why = "unknown host name"
        elif "Connection refused" in err or "timed out" in err or rc == 124:
            fix = f"start sshd on {host} and open port {port} ({TOOLKIT_STORE_FIX})"
            why = "no SSH server answers"
        else:
            fix = f"run as {account}: sftp -P {port} {where} and read the error"
            why = "login failed"
        self.r.error(f"sftp_login{tag}", f"{account} cannot log in to {where} over SFTP ({why}: {last})", fix)

    # ------------------------------------------------------------------ database
    def check_database(self):
        uri = self.conf["backend"]
        shown = redact_uri(uri)
        if not uri.startswith("sqlite:"):
            self.r.ok("database", f"backend store {shown} is not SQLite: file, journal and backup checks skipped")
            return
        match = re.match(r"^sqlite(?:\+\w+)?://(/?)([^?]*)", uri)
        if not match or not match.group(2) or match.group(2) == ":memory:":
            self.r.error("database", f"backend store {shown} is not a file: every restart loses all runs",
                         "use sqlite:////var/lib/mlflow/mlflow.db (four slashes: absolute path)")
            return
        raw_path = match.group(2)
        cwd = self.cwd or "/"
        if raw_path.startswith("/"):
            path = raw_path
            self.r.ok("database_uri", f"backend store {shown}: absolute path {path}")
        else:
            path = os.path.normpath(os.path.join(cwd, raw_path))
            extra = ""
            if raw_path.startswith(("home/", "var/", "srv/", "opt/", "root/")):
                extra = f" ('sqlite:///{raw_path}' looks absolute, but SQLAlchemy needs four slashes for that)"
            self.r.error("database_uri", f"backend store {shown} is a path relative to the working directory "
                         f"({cwd}){extra}: it resolves to {path} now, and a start from any other directory "
                         "opens (creates) another, empty database",
                         f"use an absolute path (four slashes): --backend-store-uri sqlite:///{path}, and start "
                         f"the server from {self.p['unit']}")
        self.discovered["db_path"] = path
        st = lstat(path)
        if st is None:
            self.r.error("database", f"database file {path} does not exist",
                         "the URI points elsewhere than intended, or the database was lost: restore the latest "
                         "backup, or `mlflow db upgrade` a new one")
            return
        owner = user_name(st.st_uid)
        run_as = self.proc_user or self.p["account"]
        ident = Identity(run_as)
        parent = lstat(os.path.dirname(path))
        problems = []
        if ident.exists and not ident.can(st, 6):
            problems.append(f"{run_as} (the server) cannot write it")
        if ident.exists and parent and not ident.can(parent, 3):
            problems.append(f"{run_as} cannot create its journal files in {os.path.dirname(path)}")
        text = f"database {path} ({human_bytes(st.st_size)}, {owner_text(st)})"
        if problems:
            self.r.error("database", f"{text}: {'; '.join(problems)}",
                         f"chown {run_as}: {path} {path}-wal {path}-shm and its directory")
        elif owner == "root" and self.p["account"] != "root":
            self.r.warn("database", f"{text} is owned by root: once the server runs as {self.p['account']} "
                        "(as it should) it cannot write it",
                        f"stop MLflow, chown {self.p['account']}:{self.p['account']} {path}*, then start it as "
                        f"{self.p['account']}")
        else:
            self.r.ok("database", text)
        # journal mode from the header: bytes 18/19 are 2 in WAL mode (no lock, no write)
        head = read_bytes(path, 100) or b""
        if len(head) >= 20 and head.startswith(b"SQLite format 3\x00"):
            if head[18] == 2 and head[19] == 2:
                self.r.ok("journal_mode", "journal_mode is WAL (readers do not block writers)")
            else:
                self.r.warn("journal_mode", "journal_mode is not WAL (rollback journal): concurrent clients wait "
                            "on each other (8 clients logging batches took 41 s instead of 30-34 s)",
                            f"stop MLflow, back up, then: python3 -c \"import sqlite3; "
                            f"sqlite3.connect('{path}').execute('PRAGMA journal_mode=WAL')\" (persists)")
        elif head:
            self.r.error("journal_mode", f"{path} is not an SQLite 3 database", "point the URI at the real database")
        self.check_schema(path)
        disk_check(self.r, "disk_database", os.path.dirname(path), self.p["min_free_percent"], self.p["min_free_gib"])
        self.check_backups(path)

    def check_schema(self, path):
        revision, error = None, None
        for suffix in ("?mode=ro", "?mode=ro&immutable=1"):
            try:
                conn = sqlite3.connect(f"file:{urllib.parse.quote(path)}{suffix}", uri=True, timeout=5)
                try:
                    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
                    revision = row[0] if row else ""
                    error = None
                finally:
                    conn.close()
                break
            except sqlite3.Error as exc:
                error = str(exc)
        if error:
            if "no such table" in error:
                self.r.warn("schema", f"{path} has no MLflow schema (alembic_version missing)",
                            f"mlflow db upgrade sqlite:///{path}")
            else:
                self.r.warn("schema", f"cannot read the schema revision of {path}: {error}",
                            "check the file is readable and not corrupt (sqlite3 DB 'PRAGMA integrity_check')")
            return
        self.discovered["schema_revision"] = revision
        heads = alembic_heads(self.py["migrations"]) if self.py["migrations"] else set()
        mlflow_version = self.py["mlflow"] or "?"
        if not heads:
            self.r.ok("schema", f"schema revision {revision} (the installed MLflow's revisions were not found)")
        elif revision in heads:
            self.r.ok("schema", f"schema revision {revision} is current for MLflow {mlflow_version}")
        else:
            self.r.error("schema", f"schema revision {revision} is not MLflow {mlflow_version}'s "
                         f"({', '.join(sorted(heads))}): a restart exits with 'out-of-date database schema'",
                         f"back up {path}, then {self.prefix or '.../venv'}/bin/mlflow db upgrade sqlite:///{path}")

    def check_backups(self, db_path):
        backup_dir = self.p["backup_dir"] or os.path.join(os.path.dirname(db_path), "backups")
        newest, count = None, 0
        try:
            stack = [(backup_dir, 0)]
            while stack:
                directory, depth = stack.pop()
                with os.scandir(directory) as entries:
                    for entry in entries:
                        if entry.is_dir(follow_symlinks=False) and depth < 2:
                            stack.append((entry.path, depth + 1))
                        elif entry.is_file(follow_symlinks=False):
                            count += 1
                            mtime = entry.stat(follow_symlinks=False).st_mtime
                            if newest is None or mtime > newest[0]:
                                newest = (mtime, entry.path)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                self.r.warn("backup", f"cannot read {backup_dir}: {exc}", "check its permissions")
                return
        fix = (f"back up now (sqlite3 {db_path} \".backup {backup_dir}/mlflow-$(date +%F).db\", or Python's "
               "sqlite3 .backup()) and schedule it daily (the toolkit's mlflow role does)")
        timer = self.p["backup_timer"]
        tprops = {}
        if timer:
            rc, out, _err = run(self.m, ["systemctl", "show", timer, "--no-pager",
                                         "--property=LoadState,ActiveState,LastTriggerUSec,NextElapseUSecRealtime,"
                                         "Unit"])
            if rc == 0:
                tprops = dict(line.partition("=")[::2] for line in out.splitlines())
        timer_active = tprops.get("LoadState") == "loaded" and tprops.get("ActiveState") == "active"
        never_ran = tprops.get("LastTriggerUSec", "") in ("", "n/a", "0")
        if timer_active:
            service = tprops.get("Unit") or timer.replace(".timer", ".service")
            rc, out, _err = run(self.m, ["systemctl", "show", service, "--no-pager", "--property=Result,ActiveState"])
            sprops = dict(line.partition("=")[::2] for line in out.splitlines()) if rc == 0 else {}
            if sprops.get("Result") not in (None, "", "success"):
                self.r.warn("backup", f"the last run of {service} failed ({sprops.get('Result')})",
                            f"journalctl -u {service} -n 50; systemctl start {service}")
        if newest is None:
            if timer_active and never_ran:
                self.r.ok("backup", f"no backup in {backup_dir} yet: {timer} is active and has not run yet "
                          f"(next run {tprops.get('NextElapseUSecRealtime') or '?'})")
            else:
                self.r.warn("backup", f"no backup of {db_path} in {backup_dir}"
                            + (f" although {timer} ran ({tprops.get('LastTriggerUSec')})" if timer_active else ""),
                            fix)
            return
        age = time.time() - newest[0]
        limit = self.p["backup_max_age_days"] * 86400
        text = f"newest of {count} backup file(s) is {newest[1]}, {human_age(age)} old"
        if timer_active:
            text += f" ({timer} active)"
        if age > limit:
            self.r.warn("backup", text + f" (older than {self.p['backup_max_age_days']:g} days)", fix)
        else:
            self.r.ok("backup", text)
        if os.stat(backup_dir).st_dev != os.stat(os.path.dirname(db_path)).st_dev:
            disk_check(self.r, "disk_backup", backup_dir, self.p["min_free_percent"], self.p["min_free_gib"])

    def run(self):
        self.discover()
        self.check_process()
        self.check_service()
        self.check_port_and_health()
        self.check_artifact_uri()
        self.check_store()
        self.check_ssh()
        self.check_database()
        return self.r, self.discovered


# ============================================================================= artifact host checks


class ArtifactDoctor:
    def __init__(self, module):
        self.m = module
        self.p = module.params
        self.r = Report()
        self.discovered = {}

    def pick_target(self):
        names = {n for n in self.p["host_names"] if n}
        loopback = {"localhost", "127.0.0.1", "::1"}
        picked = None
        for cand in self.p["candidates"] or []:
            host = str(cand.get("host") or "")
            same_server = cand.get("server") and cand.get("server") in names
            if host in names or (same_server and (host in loopback or cand.get("local"))) or is_local_address(host):
                picked = cand
                break
        self.target = picked
        root = self.p["artifact_root"] or (picked or {}).get("path") or "/home/mlops/mlflow/mlruns"
        port = self.p["artifact_port"] or int((picked or {}).get("port") or 22)
        self.root, self.port = root, port
        self.discovered.update(artifact_root=root, port=port, from_server=(picked or {}).get("server"))
        if picked and self.p["artifact_root"] and picked.get("path") and picked["path"] != self.p["artifact_root"]:
            self.r.warn("artifact_root", f"the tracking server {picked.get('server')} writes to {picked['path']} but "
                        f"this host's artifact_store_root is {self.p['artifact_root']}",
                        "make the server's URI and artifact_store_root agree")

    def sshd(self):
        self.sshd_conf = {}
        active = None
        for unit in ("ssh.service", "sshd.service", "ssh.socket"):
            rc, out, _err = run(self.m, ["systemctl", "is-active", unit])
            if out.strip() == "active":
                active = unit
                break
        if active:
            self.r.ok("sshd", f"{active} is active")
        else:
            self.r.error("sshd", "sshd is not running (ssh.service inactive)",
                         f"systemctl enable --now ssh ({TOOLKIT_STORE_FIX})")
        rc, out, err = run(self.m, ["/usr/sbin/sshd", "-T"])
        if rc != 0:
            self.r.warn("sshd_config", f"`sshd -T` failed: {(err.strip().splitlines() or ['?'])[-1]}",
                        "sshd -t shows the configuration error; /run/sshd must exist")
            return
        conf = {}
        for line in out.splitlines():
            key, _, value = line.partition(" ")
            conf.setdefault(key, []).append(value)
        self.sshd_conf = conf
        ports = [int(p) for p in conf.get("port", ["22"]) if p.isdigit()]
        subsystem = [v for v in conf.get("subsystem", []) if v.split()[:1] == ["sftp"]]
        problems = []
        if not subsystem:
            problems.append("no `Subsystem sftp`")
        if self.port not in ports:
            problems.append(f"does not listen on port {self.port} (ports {ports})")
        if conf.get("pubkeyauthentication", ["yes"])[0] != "yes":
            problems.append("PubkeyAuthentication no")
        allow_users = " ".join(conf.get("allowusers", [])).split()
        if allow_users and not any(fnmatch.fnmatchcase(self.p["account"], u.split("@")[0]) for u in allow_users):
            problems.append(f"AllowUsers does not list {self.p['account']}")
        deny = " ".join(conf.get("denyusers", [])).split()
        if any(fnmatch.fnmatchcase(self.p["account"], u.split("@")[0]) for u in deny):
            problems.append(f"DenyUsers lists {self.p['account']}")
        if problems:
            self.r.error("sshd_config", "sshd's effective configuration: " + "; ".join(problems),
                         f"fix /etc/ssh/sshd_config(.d) ({TOOLKIT_STORE_FIX})")
        else:
            self.r.ok("sshd_config", f"sshd -T: Subsystem {subsystem[0]}, ports {ports}, PubkeyAuthentication yes, "
                      f"UsePAM {conf.get('usepam', ['?'])[0]}")
        if listening_sockets(self.port):
            self.r.ok("sshd_port", f"TCP port {self.port} listens")
        else:
            self.r.error("sshd_port", f"nothing listens on TCP port {self.port}",
                         f"systemctl reload ssh; check `ss -ltn` ({TOOLKIT_STORE_FIX})")

    def account(self):
        ident = self.ident = Identity(self.p["account"])
        name = self.p["account"]
        if not ident.exists:
            self.r.error("account", f"account {name} does not exist", "ansible-playbook playbooks/accounts.yml")
            return
        shadow = read_text("/etc/shadow") or ""
        field = None
        for line in shadow.splitlines():
            parts = line.split(":")
            if parts and parts[0] == name and len(parts) > 1:
                field = parts[1]
                expire = parts[7] if len(parts) > 7 else ""
                if expire.isdigit() and int(expire) * 86400 < time.time():
                    self.r.error("account", f"account {name} expired (shadow expire date passed): sshd refuses it",
                                 f"chage -E -1 {name}")
        usepam = self.sshd_conf.get("usepam", ["yes"])[0]
        if field is not None and field.startswith("!"):
            text = f"{name}'s password field starts with '!' (locked, as useradd leaves it)"
            fix = f"usermod -p '*' {name} ('*': no password, not locked; the toolkit's accounts playbook does it)"
            if usepam == "no":
                self.r.error("account_locked", text + ": with UsePAM no, sshd refuses every login, keys included", fix)
            else:
                self.r.warn("account_locked", text + ": keys work only because UsePAM is yes; a hardened sshd "
                            "(UsePAM no) refuses every login", fix)
        elif field is not None:
            self.r.ok("account_locked", f"{name} is not '!'-locked (password field '{field[:1] or '(empty)'}...')"
                      if field not in ("*", "") else f"{name} has no password and is not locked ('*')")
        shell = ident.pw.pw_shell
        forced_internal = False
        self.keys_text = self.authorized_keys_lines()
        if self.keys_text:
            forced_internal = all("internal-sftp" in opts for opts, _t, _b in self.keys_text)
        sftp_sub = " ".join(self.sshd_conf.get("subsystem", []))
        if (not shell or shell.endswith(("nologin", "/false"))) and "internal-sftp" not in sftp_sub and not forced_internal:
            self.r.error("account_shell", f"{name}'s shell is {shell or '(none)'}, and sshd starts the external "
                         "sftp-server through the login shell: SFTP fails",
                         f"usermod -s /bin/bash {name}, or force internal-sftp in authorized_keys ({TOOLKIT_KEYS_FIX})")

    def authorized_keys_files(self):
        home = self.ident.home
        spec = " ".join(self.sshd_conf.get("authorizedkeysfile", [".ssh/authorized_keys .ssh/authorized_keys2"]))
        files = []
        for item in spec.split():
            if item.lower() == "none":
                continue
            item = item.replace("%h", home).replace("%u", self.p["account"]).replace("%%", "%")
            files.append(item if item.startswith("/") else os.path.join(home, item))
        return files

    def authorized_keys_lines(self):
        entries = []
        key_re = re.compile(r"(?:^|\s)((?:ssh|ecdsa|sk)-[\w@.-]+)\s+([A-Za-z0-9+/=]+)")
        for path in self.authorized_keys_files():
            text = read_text(path) or ""
            for line in text.splitlines():
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                match = key_re.search(line)
                if not match:
                    continue
                entries.append((line[:match.start()].strip(), match.group(1), match.group(2)))
        return entries

    def authorized_keys(self):
        if not self.ident.exists:
            return
        name, home = self.p["account"], self.ident.home
        files = self.authorized_keys_files()
        entries = self.keys_text
        strict = self.sshd_conf.get("strictmodes", ["yes"])[0] == "yes"
        if not entries:
            self.r.error("authorized_keys", f"{' '.join(files)} holds no key: nobody can log in as {name}",
                         f"authorize the server's public key ({TOOLKIT_KEYS_FIX})")
        else:
            open_keys = [e for e in entries if "restrict" not in e[0] and "command=" not in e[0]]
            if open_keys:
                self.r.warn("authorized_keys", f"{len(open_keys)} of {len(entries)} key(s) for {name} allow a full "
                            "shell and port forwarding (no restrict,command=\"internal-sftp\")",
                            f"prefix them with restrict,command=\"internal-sftp -u 0027\" ({TOOLKIT_KEYS_FIX})")
            else:
                self.r.ok("authorized_keys", f"{len(entries)} key(s) for {name}, all restricted")
        # StrictModes: the file and each directory up to home must not be writable by others
        if strict:
            bad = []
            for path in files:
                if not os.path.exists(path):
                    continue
                probe = path
                while True:
                    st = lstat(probe)
                    if st and (st.st_uid not in (0, self.ident.uid) or stat.S_IMODE(st.st_mode) & 0o022):
                        bad.append(f"{probe} ({owner_text(st)})")
                    if probe in (home, "/") or not probe.startswith(home):
                        break
                    probe = os.path.dirname(probe)
            if bad:
                self.r.error("strict_modes", f"sshd (StrictModes yes) ignores {name}'s keys: " + ", ".join(bad),
                             f"chmod go-w those paths; chown {name} them")
            else:
                self.r.ok("strict_modes", f"{name}'s home, ~/.ssh and authorized_keys pass StrictModes")
        # the keys the tracking server uses
        target = self.target
        if target and entries:
            blobs = {b for _o, _t, b in entries}
            for key in self.p["candidates_keys"]:
                if key.get("host") != target.get("host"):
                    continue
                if key["public"] in blobs:
                    self.r.ok("server_key_authorized", f"{key['account']}'s key on {target.get('server')} "
                              f"({os.path.basename(key['path'])}, {key['type']}) is authorized for {name}")
                else:
                    self.r.error("server_key_authorized", f"{key['account']}'s key on {target.get('server')} "
                                 f"({key['path']}, {key['type']}) is not in {name}'s authorized_keys",
                                 f"append {key['path']}.pub to {files[0] if files else '~/.ssh/authorized_keys'} "
                                 f"({TOOLKIT_KEYS_FIX})")

    def tree(self):
        root = self.root
        ident = self.ident
        name = self.p["account"]
        st = lstat(root)
        if st is None:
            self.r.error("artifact_root", f"artifact root {root} does not exist: uploads fail (or create a tree "
                         "with the wrong owner)", f"{TOOLKIT_STORE_FIX} (creates it, owned by {name})")
            return
        if not stat.S_ISDIR(st.st_mode):
            self.r.error("artifact_root", f"artifact root {root} is not a directory", "point the URI at a directory")
            return
        # parents must be traversable
        if ident.exists:
            blocked = []
            probe = os.path.dirname(root)
            while True:
                pst = lstat(probe)
                if pst and not ident.can(pst, 1):
                    blocked.append(f"{probe} ({owner_text(pst)})")
                if probe == "/":
                    break
                probe = os.path.dirname(probe)
            if blocked:
                self.r.error("artifact_path", f"{name} cannot traverse " + ", ".join(blocked),
                             "chmod o+x (or g+x with the group) those directories")
            else:
                self.r.ok("artifact_path", f"{name} can reach {root}")
        try:
            group = grp.getgrnam(self.p["group"])
            gid = group.gr_gid
        except KeyError:
            gid = None
            self.r.warn("artifact_group", f"group {self.p['group']} does not exist", "create it or set doctor_group")
        dir_mode, file_mode = int(self.p["dir_mode"], 8), int(self.p["file_mode"], 8)
        limit = self.p["max_examples"]
        stats = {"dirs": 0, "files": 0, "links": 0, "other": 0}
        wrong_owner, wrong_group, wrong_dir_mode, wrong_file_mode, unreadable, unwritable = [], [], [], [], [], []
        counts = {"owner": 0, "group": 0, "dmode": 0, "fmode": 0, "unreadable": 0, "unwritable": 0}
        owners = {}

        def note(kind, bucket, path, est):
            counts[kind] += 1
            if len(bucket) < limit:
                bucket.append(f"{path} ({owner_text(est)})")

        def check(path, est, is_dir):
            if ident.exists and est.st_uid != ident.uid:
                note("owner", wrong_owner, path, est)
                owners[user_name(est.st_uid)] = owners.get(user_name(est.st_uid), 0) + 1
            if gid is not None and est.st_gid != gid:
                note("group", wrong_group, path, est)
            mode = stat.S_IMODE(est.st_mode)
            if is_dir:
                if mode != dir_mode:
                    note("dmode", wrong_dir_mode, path, est)
                if ident.exists and not ident.can(est, 7):
                    note("unwritable", unwritable, path, est)
            else:
                if mode != file_mode:
                    note("fmode", wrong_file_mode, path, est)
                if ident.exists and not ident.can(est, 4):
                    note("unreadable", unreadable, path, est)

        start = time.monotonic()
        check(root, st, True)
        stack = [root]
        walk_errors = []
        while stack:
            directory = stack.pop()
            try:
                with os.scandir(directory) as entries:
                    for entry in entries:
                        try:
                            est = entry.stat(follow_symlinks=False)
                        except OSError:
                            continue
                        if stat.S_ISLNK(est.st_mode):
                            stats["links"] += 1
                        elif stat.S_ISDIR(est.st_mode):
                            stats["dirs"] += 1
                            check(entry.path, est, True)
                            stack.append(entry.path)
                        elif stat.S_ISREG(est.st_mode):
                            stats["files"] += 1
                            check(entry.path, est, False)
                        else:
                            stats["other"] += 1
            except OSError as exc:
                walk_errors.append(f"{directory}: {exc.strerror}")
        took = time.monotonic() - start
        total = stats["dirs"] + stats["files"] + 1
        self.discovered["tree"] = dict(stats, seconds=round(took, 2))
        self.r.ok("artifact_root", f"{root} ({owner_text(st)}): {stats['dirs']} directories, {stats['files']} files, "
                  f"{stats['links']} symlinks, walked in {took:.2f} s")
        repair = (f"chown -R {name}:{self.p['group']} {root} && find {root} -type d -exec chmod {self.p['dir_mode']} "
                  f"{{}} + && find {root} -type f -exec chmod {self.p['file_mode']} {{}} + (or {TOOLKIT_STORE_FIX}, "
                  "which repairs owners and modes)")
        if walk_errors:
            self.r.warn("artifact_tree", f"{len(walk_errors)} directories could not be read: {walk_errors[:limit]}",
                        repair)
        if counts["owner"]:
            by = ", ".join(f"{k}: {v}" for k, v in sorted(owners.items()))
            self.r.error("artifact_owner", f"{counts['owner']} of {total} entries are not owned by {name} ({by}), "
                         f"e.g. {', '.join(wrong_owner)}", repair)
        else:
            self.r.ok("artifact_owner", f"all {total} entries are owned by {name}")
        if counts["unreadable"] or counts["unwritable"]:
            parts = []
            if counts["unreadable"]:
                parts.append(f"cannot read {counts['unreadable']} file(s), e.g. {', '.join(unreadable)} "
                             "(downloads and the UI fail)")
            if counts["unwritable"]:
                parts.append(f"cannot write into {counts['unwritable']} director(y/ies), e.g. {', '.join(unwritable)} "
                             "(uploads fail)")
            self.r.error("artifact_access", f"{name} " + "; ".join(parts), repair)
        if counts["group"]:
            self.r.warn("artifact_group", f"{counts['group']} entries are not in group {self.p['group']}, e.g. "
                        f"{', '.join(wrong_group)}", repair)
        if counts["dmode"] or counts["fmode"]:
            parts = []
            if counts["dmode"]:
                parts.append(f"{counts['dmode']} of {stats['dirs'] + 1} directories are not {self.p['dir_mode']}, "
                             f"e.g. {', '.join(wrong_dir_mode)}")
            if counts["fmode"]:
                parts.append(f"{counts['fmode']} of {stats['files']} files are not {self.p['file_mode']}, e.g. "
                             f"{', '.join(wrong_file_mode)}")
            self.r.warn("artifact_modes", "; ".join(parts), repair)
        elif not counts["group"]:
            self.r.ok("artifact_modes", f"directories {self.p['dir_mode']}, files {self.p['file_mode']}, "
                      f"group {self.p['group']}")
        disk_check(self.r, "disk_artifacts", root, self.p["min_free_percent"], self.p["min_free_gib"])

    def run(self):
        self.pick_target()
        self.sshd()
        self.account()
        self.authorized_keys()
        self.tree()
        return self.r, self.discovered


# ============================================================================= main


def main():
    module = AnsibleModule(
        argument_spec=dict(
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
        ),
        supports_check_mode=True,
    )
    for key in ("dir_mode", "file_mode"):
        if not re.fullmatch(r"[0-7]{3,4}", module.params[key]):
            module.fail_json(msg=f"{key} '{module.params[key]}' is not an octal mode such as 2750")
    doctor = ServerDoctor(module) if module.params["role"] == "server" else ArtifactDoctor(module)
    try:
        report, discovered = doctor.run()
    except Exception as exc:  # noqa: BLE001 - a diagnosis must report, not crash
        import traceback

        report, discovered = doctor.r, getattr(doctor, "discovered", {})
        report.error("doctor", f"internal error: {exc!r}", "report this with the traceback: "
                     + traceback.format_exc().strip().splitlines()[-3])
    summary = report.summary()
    module.exit_json(
        changed=False,
        findings=report.findings,
        lines=report.lines(),
        summary=summary,
        discovered=discovered,
    )


if __name__ == "__main__":
    main()
