"""Someone holding the artifact account's key tries to get out of SFTP, with real ssh/sftp clients.

sshd itself confines the account (the role's Match block): keys only from root's
/etc/ssh/authorized_keys/mlops, ForceCommand internal-sftp, a chroot that holds nothing but the
artifact tree at its own path, no TTY, no forwarding. Every attempt below must fail, on both
hosts and every port. The key is the fixture of artifact_store_helpers (authorized as mlops_ssh
does it).
"""

from __future__ import annotations

import pytest
from artifact_store_helpers import (
    CHROOT,
    HOSTS,
    KEY,
    KEYS_FILE,
    SSH_OPTS,
    sftp,
    sftp_ready,  # noqa: F401 (fixture)
)

# Every test here logs in with the key the fixture authorizes.
pytestmark = pytest.mark.usefixtures("sftp_ready")
CASES = [(name, port) for name, (_root, _group, ports) in HOSTS.items() for port in ports]
NAMES = list(HOSTS)
# What an attacker would write: the same key without any option (a full shell if sshd read it).
OPEN_LINE = f"$(cat {KEY}.pub)"


def ssh(host, args: str, port: int = 22, timeout: int = 20):
    """Run the OpenSSH client as the attacker (the test key, host key checked), bounded in time."""
    return host.run(f"timeout {timeout} ssh -p {port} {SSH_OPTS} {args}")


@pytest.mark.parametrize(("name", "port"), CASES)
def test_no_shell_command(podman_host, name, port):
    host = podman_host(name)
    result = ssh(host, "mlops@localhost 'id; echo escaped'", port)
    assert result.rc != 0
    assert "uid=" not in result.stdout and "escaped" not in result.stdout, result.stdout
    assert "sftp connections only" in result.stdout + result.stderr


@pytest.mark.parametrize(("name", "port"), CASES)
def test_no_tty(podman_host, name, port):
    host = podman_host(name)
    result = ssh(host, "-tt mlops@localhost /bin/sh -c id </dev/null", port)
    assert "uid=" not in result.stdout, result.stdout
    assert "PTY allocation request failed" in result.stderr, result.stderr


@pytest.mark.parametrize(("name", "port"), CASES)
def test_no_stdio_forwarding(podman_host, name, port):
    host = podman_host(name)
    # -W: the SSH connection as a pipe to another host's port (here sshd's own port 22).
    result = ssh(host, "-W 127.0.0.1:22 mlops@localhost </dev/null", port)
    assert result.rc != 0
    assert "SSH-2.0" not in result.stdout, result.stdout
    assert "administratively prohibited" in result.stderr, result.stderr


@pytest.mark.parametrize(("name", "port"), CASES)
def test_no_local_port_forwarding(podman_host, name, port):
    host = podman_host(name)
    # -L: a local port that would reach 127.0.0.1:22 through the artifact host. The client opens the
    # listener; what matters is that no byte of the far side comes back through it.
    listen = 20000 + port
    result = host.run(
        f"""(timeout 10 ssh -p {port} {SSH_OPTS} -N -L 127.0.0.1:{listen}:127.0.0.1:22 mlops@localhost \\
                 2>/root/forward-L.err &)
        sleep 3
        python3 - <<'EOF'
import socket
try:
    with socket.create_connection(("127.0.0.1", {listen}), timeout=3) as s:
        print("GOT", s.recv(64))
except OSError as exc:
    print("NONE", exc)
EOF
        sleep 1; cat /root/forward-L.err"""
    )
    assert "SSH-2.0" not in result.stdout, result.stdout
    assert "administratively prohibited" in result.stdout, result.stdout


@pytest.mark.parametrize(("name", "port"), CASES)
def test_no_remote_port_forwarding(podman_host, name, port):
    host = podman_host(name)
    result = ssh(
        host, f"-N -o ExitOnForwardFailure=yes -R 127.0.0.1:{21000 + port}:127.0.0.1:22 mlops@localhost", port
    )
    assert result.rc != 0
    assert "remote port forwarding failed" in result.stderr, result.stderr
    assert not host.socket(f"tcp://127.0.0.1:{21000 + port}").is_listening


@pytest.mark.parametrize("name", NAMES)
def test_uploaded_authorized_keys_change_nothing(podman_host, name):
    """Upload open authorized_keys/authorized_keys2 over SFTP (refused), then even plant them as root.

    The account's home is not in the chroot, and sshd reads the keys from root's file only: even
    with open lines in ~mlops/.ssh (as a stale hand-made setup would have), no shell.
    """
    host = podman_host(name)
    host.check_output(f'printf "%s\\n" "{OPEN_LINE}" > /root/open_authorized_keys')
    before = host.check_output(
        "ls -la /home/mlops/.ssh 2>&1; cat /home/mlops/.ssh/authorized_keys* 2>/dev/null | sha256sum"
    )
    for batch in (
        "mkdir /home/mlops/.ssh",
        "put /root/open_authorized_keys /home/mlops/.ssh/authorized_keys",
        "put /root/open_authorized_keys /home/mlops/.ssh/authorized_keys2",
        "put /root/open_authorized_keys /home/mlops/authorized_keys",
        f"put /root/open_authorized_keys {KEYS_FILE}",
        "put /root/open_authorized_keys /etc/ssh/authorized_keys/mlops",
    ):
        result = sftp(host, batch)
        assert result.rc != 0, f"{batch}: {result.stdout}"
    after = host.check_output(
        "ls -la /home/mlops/.ssh 2>&1; cat /home/mlops/.ssh/authorized_keys* 2>/dev/null | sha256sum"
    )
    assert after == before
    assert host.file(KEYS_FILE).user == "root" and host.file(KEYS_FILE).mode == 0o644
    assert "restrict," in host.file(KEYS_FILE).content_string
    assert ssh(host, "mlops@localhost id").stdout.find("uid=") < 0

    # The worst case: open lines already in the account's own files (put there as root).
    host.check_output(
        """set -e
        install -d -o mlops -g mlops -m 0700 /home/mlops/.ssh
        for f in authorized_keys authorized_keys2; do
            cp /home/mlops/.ssh/$f /root/saved_$f 2>/dev/null || rm -f /root/saved_$f
            install -o mlops -g mlops -m 0600 /root/open_authorized_keys /home/mlops/.ssh/$f
        done"""
    )
    try:
        result = ssh(host, "mlops@localhost id")
        assert "uid=" not in result.stdout, result.stdout
        assert "sftp connections only" in result.stdout + result.stderr
    finally:
        host.check_output(
            """for f in authorized_keys authorized_keys2; do
                if [ -e /root/saved_$f ]; then mv /root/saved_$f /home/mlops/.ssh/$f;
                else rm -f /home/mlops/.ssh/$f; fi
            done"""
        )


@pytest.mark.parametrize("name", NAMES)
def test_nothing_outside_the_artifact_root_is_writable(podman_host, name):
    host = podman_host(name)
    root = HOSTS[name][0]
    parent = root.rsplit("/", 1)[0]
    host.check_output("head -c 100 /dev/urandom > /root/escape.bin")
    for target in ("/tmp/escape.bin", "/escape.bin", f"{parent}/escape.bin", "/home/mlops/escape.bin"):
        result = sftp(host, f"put /root/escape.bin {target}")
        assert result.rc != 0, f"{target}: {result.stdout}"
    for batch in (f"mkdir {parent}/x", "mkdir /x", f"rename {root} {parent}/moved", f"chmod 0777 {parent}"):
        result = sftp(host, batch)
        assert result.rc != 0, f"{batch}: {result.stdout}"
    assert (
        host.check_output(
            f"find / -xdev -name escape.bin -newer /root/escape.bin 2>/dev/null; ls {CHROOT}{parent}"
        )
        == root.rsplit("/", 1)[1]
    )


@pytest.mark.parametrize("name", NAMES)
def test_nothing_outside_the_artifact_root_is_readable(podman_host, name):
    host = podman_host(name)
    root = HOSTS[name][0]
    for path in (
        "/etc/passwd",
        "/etc/shadow",
        "/etc/ssh/ssh_host_ed25519_key",
        "/home/mlops/.bashrc",
        "/proc/self/environ",
    ):
        result = sftp(host, f"get {path} /root/stolen")
        assert result.rc != 0, f"{path}: {result.stdout}"
    # A symlink made inside the tree resolves inside the chroot, where the target does not exist.
    link = f"{root}/link-to-passwd"
    host.check_output(f"rm -f {link}")
    made = sftp(host, f"symlink /etc/passwd {link}")
    try:
        assert made.rc == 0, made.stdout + made.stderr
        result = sftp(host, f"get {link} /root/stolen")
        assert result.rc != 0, result.stdout
    finally:
        host.check_output(f"rm -f {link}")
    # The whole view: the chroot's root holds only the way down to the artifact root.
    top = root.split("/")[1]
    listing = sftp(host, "ls -1a /")
    assert listing.rc == 0, listing.stderr
    assert sorted(
        line.strip() for line in listing.stdout.splitlines() if not line.startswith("sftp>")
    ) == sorted(["/.", "/..", f"/{top}"])
