"""A throwaway OpenSSH sshd on 127.0.0.1 for tests and benchmarks (needs root and /usr/sbin/sshd)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SSHD = os.environ.get("MLFLOW_SFTP_TEST_SSHD", "/usr/sbin/sshd")
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
HOST_KEY_TYPES = ("ed25519", "ecdsa", "rsa")


def sshd_available() -> bool:
    """True when an sshd binary and ssh-keygen exist and we are root (sshd needs it for logins)."""
    return os.path.isfile(SSHD) and os.path.isfile(SSH_KEYGEN) and os.geteuid() == 0


def free_port() -> int:
    """A currently unused high TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path, key_type: str, passphrase: str = "", comment: str = "test") -> Path:
    """Create an OpenSSH key pair; returns the private key path."""
    extra = ["-b", "3072"] if key_type == "rsa" else []
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", key_type, *extra, "-N", passphrase, "-C", comment, "-f", str(path)],
        check=True,
    )
    return path


class Sshd:
    """An sshd process with its own config, host keys and authorized_keys in ``workdir``."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.authorized_keys = workdir / "authorized_keys"
        self.config = workdir / "sshd_config"
        self.pidfile = workdir / "sshd.pid"
        self.log = workdir / "sshd.log"
        self.proc: subprocess.Popen | None = None
        self.host_keys: dict[str, Path] = {}

    def setup(self) -> None:
        """Write host keys, an empty authorized_keys and sshd_config."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        for ktype in HOST_KEY_TYPES:
            path = self.workdir / f"ssh_host_{ktype}_key"
            if not path.exists():
                keygen(path, ktype, comment=f"host-{ktype}")
            self.host_keys[ktype] = path
        self.authorized_keys.touch()
        host_key_lines = "\n".join(f"HostKey {p}" for p in self.host_keys.values())
        self.config.write_text(
            f"""Port {self.port}
ListenAddress {self.host}
{host_key_lines}
PidFile {self.pidfile}
AuthorizedKeysFile {self.authorized_keys}
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxAuthTries 10
MaxStartups 100:30:200
MaxSessions 50
LogLevel VERBOSE
Subsystem sftp internal-sftp
"""
        )

    def start(self, timeout: float = 15.0) -> None:
        """Start sshd in the foreground (-D) and wait until it answers with an SSH banner."""
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
        logfh = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [SSHD, "-f", str(self.config), "-D", "-e"],
            stdout=logfh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        logfh.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited with {self.proc.returncode}: {self.log.read_text()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as s:
                    if s.recv(64).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd did not come up on port {self.port}: {self.log.read_text()}")

    def stop(self) -> None:
        """Stop sshd and its session processes."""
        if self.proc is None:
            return
        self.kill_sessions()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def authorize(self, pubkey_path: Path, options: str = "") -> None:
        """Append a public key (optionally with authorized_keys options) to authorized_keys."""
        line = pubkey_path.read_text().strip()
        with open(self.authorized_keys, "a") as fh:
            fh.write(f"{options} {line}\n" if options else f"{line}\n")

    def host_public_key(self, ktype: str) -> str:
        """``keytype base64`` of one host key."""
        fields = Path(f"{self.host_keys[ktype]}.pub").read_text().split()
        return f"{fields[0]} {fields[1]}"

    def session_pids(self) -> list[int]:
        """PIDs of all descendants of the listener (one process tree per SSH connection)."""
        if self.proc is None:
            return []
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    data = fh.read()
            except OSError:
                continue
            ppid = int(data.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
        result: list[int] = []
        todo = [self.proc.pid]
        while todo:
            pid = todo.pop()
            for child in children.get(pid, []):
                result.append(child)
                todo.append(child)
        return result

    def kill_sessions(self) -> int:
        """SIGKILL every per-connection sshd process (as if the sessions were dropped); returns count."""
        pids = self.session_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(p in self.session_pids() for p in pids):
            time.sleep(0.02)
        return len(pids)
