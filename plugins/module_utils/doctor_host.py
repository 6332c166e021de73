"""What the doctor reads on the host: files, accounts, commands, free space and sockets (all read-only)."""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess

from ansible_collections.mlops.mlflow.plugins.module_utils.mlflow_processes import read_proc

GIB = 1024**3


def read_text(path, limit=1 << 20):
    """Up to LIMIT bytes of the file PATH as text (undecodable bytes replaced); None if unreadable."""
    data = read_proc(path, limit)
    return None if data is None else data.decode("utf-8", "replace")


def read_bytes(path, limit=1 << 20):
    """Up to LIMIT bytes of the file PATH; None if unreadable."""
    return read_proc(path, limit)


def lstat(path):
    """os.lstat of PATH, or None when it does not exist or cannot be read."""
    try:
        return os.lstat(path)
    except OSError:
        return None


def ancestors(path, top="/"):
    """PATH, then each directory above it while inside TOP, ending at TOP (or at "/")."""
    while True:
        yield path
        if path in (top, "/") or not path.startswith(top):
            return
        path = os.path.dirname(path)


def user_name(uid):
    """Name of the account UID (the number as text when it has none)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid):
    """Name of the group GID (the number as text when it has none)."""
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def owner_text(st):
    """``user:group mode`` of a stat result, as the findings show it."""
    return f"{user_name(st.st_uid)}:{group_name(st.st_gid)} {stat.S_IMODE(st.st_mode):04o}"


def human_bytes(value):
    """VALUE bytes in B, KiB, MiB, GiB or TiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{value} B"
        value /= 1024.0
    return str(value)


def human_age(seconds):
    """SECONDS as minutes, hours or days."""
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


class Identity:
    """A local account as the kernel sees it (uid, primary and supplementary groups)."""

    def __init__(self, name):
        """Look up the account NAME and its groups (no account: exists is false)."""
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
        """Whether the account exists."""
        return self.pw is not None

    @property
    def uid(self):
        """The account's uid (-1 when it does not exist)."""
        return self.pw.pw_uid if self.pw else -1

    @property
    def home(self):
        """The account's home directory (/home/NAME when it does not exist)."""
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
    """Report the free space of the filesystem holding PATH (or its nearest existing parent) as CHECK."""
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
    text = (
        f"{human_bytes(usage.free)} free of {human_bytes(usage.total)} ({percent:.0f}%) "
        f"on the filesystem of {path}"
    )
    if percent < min_percent or usage.free < min_gib * GIB:
        report.warn(
            check,
            text + f" (below {min_percent:g}% or {min_gib:g} GiB)",
            "free space or grow the filesystem: SQLite and uploads fail with 'database or disk is full'",
        )
    else:
        report.ok(check, text)


def truthy(value):
    """Whether VALUE is a true flag (a bool, or 1/true/yes/on as text)."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def redact_uri(uri):
    """URI with the password of its user information replaced by ***."""
    return re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", uri or "")


def version_tuple(text):
    """The first three numbers of a version TEXT, as a tuple of ints."""
    return tuple(int(p) for p in re.findall(r"\d+", text or "")[:3])


def listening_sockets(port):
    """Addresses with a TCP socket listening on PORT (from /proc/net/tcp and tcp6)."""
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
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
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
