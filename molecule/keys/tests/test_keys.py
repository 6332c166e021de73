"""mlops_account and mlops_ssh: accounts, key files, SFTP-only logins, known_hosts, rotation.

Pairs under test (molecule.yml): keys-server -> keys-artifact on port 2222 (sshd there
listens on 22 and 2222), and keys-solo -> keys-solo on 22 (one host in both groups, with
an mlops account made by hand before the roles ran). sshd runs with `UsePAM no` on the
artifact hosts, so a locked account could not log in with a key. The artifact hosts run the
artifact_store role first: sshd confines mlops (keys from root's KEYS_FILE only, internal-sftp
starting in the artifact root, a chroot holding only the artifact tree).

The rotation tests change the hosts; they run after the static checks, in file order.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import run_playbook

SCENARIO_DIR = Path(__file__).resolve().parent.parent
KEY_NAME = "id_mlflow_sftp"
LOGIN = "mlops"
OPTIONS = 'restrict,command="internal-sftp -u 0027"'
# The login's keys: root's file named by the artifact_store role's sshd drop-in.
KEYS_FILE = f"/etc/ssh/authorized_keys/{LOGIN}"
ARTIFACT_ROOT = "/home/mlops/mlflow/mlruns"
# (key-holding host, artifact host, address used, port)
PAIRS = [
    ("keys-server", "keys-artifact", "keys-artifact", 2222),
    ("keys-solo", "keys-solo", "keys-solo", 22),
]
OWNERS = {"mlops": "/home/mlops", "root": "/root"}
PAIR_IDS = [p[0] for p in PAIRS]

# Run inside a key-holding container as the owner under test:
#   python3 -c SFTP_PROBE ADDRESS PORT LOGIN KEYFILE [KNOWN_HOSTS]
# 1. paramiko SSHClient with RejectPolicy and only the owner's known_hosts (OpenSSH form:
#    [host]:port for a non-22 port), a real SFTP session: write, read back, stat, remove.
# 2. the way pysftp (MLflow's stock SFTP store) checks the host: key looked up by the bare
#    host name in known_hosts and required by the transport.
SFTP_PROBE = r"""
import json, os, sys, paramiko
addr, port, login, keyfile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
known = sys.argv[5] if len(sys.argv) > 5 else os.path.expanduser("~/.ssh/known_hosts")
out = {"uid": os.getuid()}
def session(sftp, tag):
    name = "probe-%s-%d-%d" % (tag, os.getuid(), os.getpid())
    with sftp.open(name, "w") as f:
        f.write("hello " + tag)
    with sftp.open(name) as f:
        data = f.read().decode()
    mode = sftp.stat(name).st_mode & 0o7777
    sftp.remove(name)
    return {"ok": True, "data": data, "mode": oct(mode), "cwd": sftp.normalize(".")}
try:
    c = paramiko.SSHClient()
    c.load_host_keys(known)
    c.set_missing_host_key_policy(paramiko.RejectPolicy())
    c.connect(addr, port=port, username=login, key_filename=keyfile,
              look_for_keys=False, allow_agent=False, timeout=30)
    out["sshclient"] = session(c.open_sftp(), "client")
    c.close()
except Exception as e:
    out["sshclient"] = {"ok": False, "error": type(e).__name__ + ": " + str(e)}
try:
    hk = paramiko.HostKeys(known).lookup(addr)
    if hk is None:
        raise LookupError("No hostkey for host %s found." % addr)
    pkey = paramiko.PKey.from_path(keyfile) if hasattr(paramiko.PKey, "from_path") else None
    if pkey is None:
        for cls in (paramiko.Ed25519Key, paramiko.RSAKey, paramiko.ECDSAKey):
            try:
                pkey = cls.from_private_key_file(keyfile)
                break
            except Exception:
                pass
    t = paramiko.Transport((addr, port))
    t.connect(username=login, pkey=pkey, hostkey=hk[list(hk.keys())[0]])
    out["bare"] = session(paramiko.SFTPClient.from_transport(t), "bare")
    t.close()
except Exception as e:
    out["bare"] = {"ok": False, "error": type(e).__name__ + ": " + str(e)}
print(json.dumps(out))
"""


def sftp_probe(host, owner, address, port, keyfile, *, known_hosts=None):
    args = [address, str(port), LOGIN, keyfile] + ([known_hosts] if known_hosts else [])
    cmd = "runuser -u %s -- python3 -c %s " + " ".join(["%s"] * len(args))
    result = host.run(cmd, owner, SFTP_PROBE, *args)
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def pub_line(host, path):
    return host.file(path).content_string.strip()


def blob(line):
    return line.split()[1]


def managed_lines(artifact, comment):
    text = artifact.file(KEYS_FILE).content_string
    return [ln for ln in text.splitlines() if ln.endswith(" " + comment)]


def recap(output):
    """{host: {ok:.., changed:.., failed:..}} from an ansible-playbook recap."""
    counts = {}
    for m in re.finditer(
        r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output, re.M
    ):
        counts[m.group(1)] = {"ok": int(m.group(2)), "changed": int(m.group(3)), "failed": int(m.group(5))}
    return counts


# --------------------------------------------------------------------------- accounts


@pytest.mark.parametrize("name", ["keys-server", "keys-artifact"])
def test_account_created_on_fresh_host(podman_host, name):
    host = podman_host(name)
    user = host.user("mlops")
    assert user.exists
    assert user.group == "mlops"
    assert user.home == "/home/mlops"
    assert user.shell == "/bin/bash"
    assert user.uid < 1000, "a system account"
    home = host.file("/home/mlops")
    assert home.is_directory
    assert (home.user, home.group, home.mode) == ("mlops", "mlops", 0o750)


@pytest.mark.parametrize("name", ["keys-server", "keys-artifact", "keys-solo"])
def test_account_not_locked(podman_host, name):
    """sshd with UsePAM no refuses '!' (locked) accounts; '*' lets key logins in."""
    host = podman_host(name)
    field = host.check_output("getent shadow mlops").split(":")[1]
    assert field == "*"


def test_handmade_account_not_churned(podman_host):
    """keys-solo's mlops was made with `useradd -m -s /bin/sh`: shell and uid stay."""
    solo = podman_host("keys-solo")
    user = solo.user("mlops")
    assert user.shell == "/bin/sh"
    assert user.uid == 1000
    assert user.home == "/home/mlops"
    assert solo.package("acl").is_installed


# --------------------------------------------------------------------------- key files


@pytest.mark.parametrize("name", PAIR_IDS)
@pytest.mark.parametrize("owner", sorted(OWNERS))
def test_key_files_owned_and_private(podman_host, name, owner):
    host = podman_host(name)
    home = OWNERS[owner]
    ssh_dir = host.file(f"{home}/.ssh")
    assert ssh_dir.is_directory
    assert (ssh_dir.user, ssh_dir.mode) == (owner, 0o700)
    key = host.file(f"{home}/.ssh/{KEY_NAME}")
    assert (key.user, key.group, key.mode) == (owner, owner, 0o600)
    pub = host.file(f"{home}/.ssh/{KEY_NAME}.pub")
    assert (pub.user, pub.mode) == (owner, 0o644)
    for extra in ("known_hosts", "config"):
        assert host.file(f"{home}/.ssh/{extra}").user == owner
    assert not host.file(f"{home}/.ssh/{KEY_NAME}.new").exists


@pytest.mark.parametrize("name", PAIR_IDS)
def test_same_key_in_both_homes_default_type(podman_host, name):
    host = podman_host(name)
    assert (
        host.file(f"/root/.ssh/{KEY_NAME}").sha256sum == host.file(f"/home/mlops/.ssh/{KEY_NAME}").sha256sum
    )
    info = host.check_output(f"ssh-keygen -l -f /home/mlops/.ssh/{KEY_NAME}.pub").split()
    # mlflow_sftp_plugin_enabled defaults to true, so the default type is ed25519.
    assert info[-1] == "(ED25519)"
    assert info[2] == f"mlflow-sftp@{name}"


@pytest.mark.parametrize(("name", "artifact_name", "address", "port"), PAIRS, ids=PAIR_IDS)
def test_authorized_sftp_only(podman_host, name, artifact_name, address, port):
    host, artifact = podman_host(name), podman_host(artifact_name)
    pub = pub_line(host, f"/home/mlops/.ssh/{KEY_NAME}.pub")
    lines = managed_lines(artifact, f"mlflow-sftp@{name}")
    assert len(lines) == 1
    assert lines[0] == f"{OPTIONS} {pub}"
    auth = artifact.file(KEYS_FILE)
    assert (auth.user, auth.group, auth.mode) == ("root", "root", 0o644)
    own = artifact.file(f"/home/{LOGIN}/.ssh/authorized_keys")
    assert not own.exists or f"mlflow-sftp@{name}" not in own.content_string


# --------------------------------------------------------------------------- known_hosts, config


@pytest.mark.parametrize(("name", "artifact_name", "address", "port"), PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("owner", sorted(OWNERS))
def test_known_hosts_from_artifact_host_keys(podman_host, name, artifact_name, address, port, owner):
    host, artifact = podman_host(name), podman_host(artifact_name)
    lines = set(host.file(f"{OWNERS[owner]}/.ssh/known_hosts").content_string.splitlines())
    host_keys = artifact.check_output("cat /etc/ssh/ssh_host_*_key.pub").splitlines()
    assert len(host_keys) >= 2
    for hk in host_keys:
        ktype, kblob = hk.split()[:2]
        assert f"{address} {ktype} {kblob}" in lines, "bare form (pysftp)"
        bracket = f"[{address}]:{port} {ktype} {kblob}"
        if port == 22:
            assert bracket not in lines
        else:
            assert bracket in lines, "[host]:port form (OpenSSH)"


@pytest.mark.parametrize(("name", "artifact_name", "address", "port"), PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("owner", sorted(OWNERS))
def test_ssh_config_entry(podman_host, name, artifact_name, address, port, owner):
    host = podman_host(name)
    # `ssh -G` prints the configuration OpenSSH resolves for the host, as that user.
    cfg = host.check_output(f"runuser -u {owner} -- ssh -G {address}").splitlines()
    assert f"hostname {address}" in cfg
    assert f"user {LOGIN}" in cfg
    assert f"port {port}" in cfg
    assert f"identityfile {OWNERS[owner]}/.ssh/{KEY_NAME}" in cfg
    assert "stricthostkeychecking true" in cfg


# --------------------------------------------------------------------------- real logins


@pytest.mark.parametrize(("name", "artifact_name", "address", "port"), PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("owner", sorted(OWNERS))
def test_sftp_session_with_installed_key(podman_host, name, artifact_name, address, port, owner):
    host = podman_host(name)
    out = sftp_probe(host, owner, address, port, f"{OWNERS[owner]}/.ssh/{KEY_NAME}")
    for how in ("sshclient", "bare"):
        assert out[how]["ok"], out[how]
        # The chroot's start directory (internal-sftp -d): the artifact root, at its own path.
        assert out[how]["cwd"] == ARTIFACT_ROOT
        assert out[how]["data"].startswith("hello")
        # internal-sftp -u 0027 from the authorized_keys line.
        assert out[how]["mode"] == "0o640"


@pytest.mark.parametrize(("name", "artifact_name", "address", "port"), PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("owner", sorted(OWNERS))
def test_openssh_sftp_strict_and_shell_refused(podman_host, name, artifact_name, address, port, owner):
    host = podman_host(name)
    sftp = host.run(
        f"echo pwd | runuser -u {owner} -- sftp -b - -o BatchMode=yes -o StrictHostKeyChecking=yes {address}"
    )
    assert sftp.rc == 0, sftp.stderr
    assert f"Remote working directory: {ARTIFACT_ROOT}" in sftp.stdout
    shell = host.run(f"runuser -u {owner} -- ssh -o BatchMode=yes -o StrictHostKeyChecking=yes {address} id")
    assert shell.rc != 0
    assert "uid=" not in shell.stdout
    assert "This service allows sftp connections only." in shell.stdout + shell.stderr


def test_unknown_host_key_is_rejected(podman_host):
    """Strict checking is real: with an empty known_hosts the same login fails."""
    server = podman_host("keys-server")
    server.run("install -m 0644 /dev/null /tmp/empty_known_hosts")
    out = sftp_probe(
        server, "root", "keys-artifact", 2222, f"/root/.ssh/{KEY_NAME}", known_hosts="/tmp/empty_known_hosts"
    )
    assert not out["sshclient"]["ok"]
    assert "SSHException" in out["sshclient"]["error"]
    assert not out["bare"]["ok"]


# --------------------------------------------------------------------------- escape attempts


@pytest.mark.parametrize(("name", "artifact_name", "address", "port"), PAIRS, ids=PAIR_IDS)
def test_real_key_cannot_escape(podman_host, name, artifact_name, address, port):
    """The installed key, as the tracking server's mlops holds it, tries every way out of SFTP."""
    host, artifact = podman_host(name), podman_host(artifact_name)
    as_mlops = "runuser -u mlops -- "
    opts = "-o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=10"
    # An authorized_keys with the same key and no options: a shell, if sshd read it.
    host.check_output(
        f"install -o mlops -g mlops -m 0644 /home/mlops/.ssh/{KEY_NAME}.pub /tmp/open_authorized_keys"
    )
    own_before = artifact.run("sha256sum /home/mlops/.ssh/authorized_keys*; ls -la /home/mlops/.ssh").stdout
    for batch in (
        "put /tmp/open_authorized_keys /home/mlops/.ssh/authorized_keys",
        "put /tmp/open_authorized_keys /home/mlops/.ssh/authorized_keys2",
        "mkdir /home/mlops/.ssh",
        f"put /tmp/open_authorized_keys {KEYS_FILE}",
        "put /tmp/open_authorized_keys /tmp/escape",
        f"put /tmp/open_authorized_keys {ARTIFACT_ROOT.rsplit('/', 1)[0]}/escape",
        "get /etc/passwd /tmp/stolen",
    ):
        result = host.run(f"echo '{batch}' | {as_mlops} sftp -b - {opts} {address}")
        assert result.rc != 0, f"{batch}: {result.stdout}"
    assert (
        artifact.run("sha256sum /home/mlops/.ssh/authorized_keys*; ls -la /home/mlops/.ssh").stdout
        == own_before
    )
    assert not artifact.file("/tmp/escape").exists
    # No command, no TTY, no forwarding with it.
    for args in (
        "'id; echo escaped'",
        "-tt id",
        "-W 127.0.0.1:22",
        "-N -o ExitOnForwardFailure=yes -R 127.0.0.1:2399:127.0.0.1:22",
    ):
        result = host.run(f"{as_mlops} timeout 20 ssh {opts} {args} {address} </dev/null")
        assert result.rc != 0, args
        assert (
            "uid=" not in result.stdout and "escaped" not in result.stdout and "SSH-2.0" not in result.stdout
        ), args


# --------------------------------------------------------------------------- rotation

UNMANAGED_ARTIFACT = [
    "# ops bastion, added by hand",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINMEKUQwi++tR9gUJX6qJecfVPMj9XbIEFxe6b9bwyXo ops@bastion",
    # Another tracking server's key: its own comment, so keys-server's rotation leaves it.
    f"{OPTIONS} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGUJ2G5r1+s2yxpFu6nfxsh4eq4zu/kV86PubzlD9TDh "
    "mlflow-sftp@other-server",
]
UNMANAGED_SOLO = [
    "# admin's laptop, added by hand",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFzwXly7tXWFvFsmNG5JTTMu6De9a6GAk2POrzbByk/f admin@laptop",
]
# keys-server's key where an earlier version of the toolkit put it, in the login's own file,
# without options: sshd ignores that file now, and the role removes this host's lines from it.
LEGACY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBqWVCB0aVpYx9WqPqMKBnT4dH2DkEJt0yv7o8f3rWqM mlflow-sftp@keys-server"
)
# A key of keys-server's left behind by an interrupted rotation: same comment, other key.
STALE = (
    f"{OPTIONS} ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDcWGrvJwVl7dqWm5rZWnUm9oXvFSo0mH1y3bJfDk0h2s8Q "
    "mlflow-sftp@keys-server"
)


def snapshot(podman_host, tag):
    """Current public keys, and a root-only copy of each private key for later checks."""
    keys = {}
    for name, _, _, _ in PAIRS:
        host = podman_host(name)
        host.check_output(f"install -m 0600 /home/mlops/.ssh/{KEY_NAME} /root/key-{tag}")
        keys[name] = pub_line(host, f"/home/mlops/.ssh/{KEY_NAME}.pub")
    return keys


def assert_no_key_material(output, *pubs):
    assert "PRIVATE KEY" not in output
    for pub in pubs:
        assert blob(pub) not in output


@pytest.fixture(scope="module")
def first_rotation(podman_host):
    artifact = podman_host("keys-artifact")
    for line in UNMANAGED_ARTIFACT + [STALE]:
        artifact.check_output(f"echo '{line}' >> {KEYS_FILE}")
    artifact.check_output(
        "install -d -o mlops -g mlops -m 0700 /home/mlops/.ssh"
        f" && echo '{LEGACY}' >> /home/mlops/.ssh/authorized_keys"
    )
    before = snapshot(podman_host, "r0")
    result = run_playbook(SCENARIO_DIR, "converge.yml", "-v", "--diff", "-e", "mlops_ssh_rotate=true")
    after = snapshot(podman_host, "r1")
    return {"before": before, "after": after, "output": result.stdout + result.stderr}


@pytest.fixture(scope="module")
def second_rotation(podman_host, first_rotation):
    result = run_playbook(SCENARIO_DIR, "converge.yml", "-e", "mlops_ssh_rotate=true")
    after = snapshot(podman_host, "r2")
    return {"before": first_rotation["after"], "after": after, "output": result.stdout + result.stderr}


def check_rotated(podman_host, rotation, old_tag, new_tag):
    for name, artifact_name, address, port in PAIRS:
        host, artifact = podman_host(name), podman_host(artifact_name)
        old, new = rotation["before"][name], rotation["after"][name]
        assert blob(old) != blob(new), f"{name}: key not rotated"
        assert (
            host.file(f"/root/.ssh/{KEY_NAME}").sha256sum
            == host.file(f"/home/mlops/.ssh/{KEY_NAME}").sha256sum
        )
        # Only the new key is authorized for this host.
        assert managed_lines(artifact, f"mlflow-sftp@{name}") == [f"{OPTIONS} {new}"]
        rejected = sftp_probe(host, "root", address, port, f"/root/key-{old_tag}")
        assert not rejected["sshclient"]["ok"]
        assert "AuthenticationException" in rejected["sshclient"]["error"]
        for owner, home in OWNERS.items():
            accepted = sftp_probe(host, owner, address, port, f"{home}/.ssh/{KEY_NAME}")
            assert accepted["sshclient"]["ok"], accepted
            assert accepted["bare"]["ok"], accepted
        assert host.file(f"/root/key-{new_tag}").sha256sum == host.file(f"/root/.ssh/{KEY_NAME}").sha256sum


def test_rotation_replaces_key(podman_host, first_rotation):
    check_rotated(podman_host, first_rotation, "r0", "r1")


def test_rotation_keeps_unmanaged_lines(podman_host, first_rotation):
    artifact = podman_host("keys-artifact")
    artifact_lines = artifact.file(KEYS_FILE).content_string
    for line in UNMANAGED_ARTIFACT:
        assert line in artifact_lines.splitlines()
    assert STALE not in artifact_lines, "a stale key with this host's comment is removed"
    assert LEGACY not in artifact.file("/home/mlops/.ssh/authorized_keys").content_string
    solo_lines = podman_host("keys-solo").file("/home/mlops/.ssh/authorized_keys").content_string
    for line in UNMANAGED_SOLO:
        assert line in solo_lines.splitlines()


def test_rotation_output_has_no_key_material(first_rotation):
    assert "Rotating the SFTP key" in first_rotation["output"]
    assert_no_key_material(
        first_rotation["output"], *first_rotation["before"].values(), *first_rotation["after"].values()
    )


def test_second_rotation(podman_host, second_rotation):
    check_rotated(podman_host, second_rotation, "r1", "r2")
    assert_no_key_material(second_rotation["output"], *second_rotation["after"].values())


def test_rotation_by_age(podman_host, second_rotation):
    """keys-server's key is made 3 days old; with a 1-day limit only it rotates."""
    server = podman_host("keys-server")
    server.check_output(f"touch -d '3 days ago' /home/mlops/.ssh/{KEY_NAME}")
    before = snapshot(podman_host, "a0")
    result = run_playbook(SCENARIO_DIR, "converge.yml", "-e", "mlops_ssh_key_max_age_days=1")
    after = snapshot(podman_host, "a1")
    out = result.stdout + result.stderr
    assert "key is 3 days old" in out
    assert blob(before["keys-server"]) != blob(after["keys-server"])
    assert before["keys-solo"] == after["keys-solo"], "a fresh key is not rotated"
    counts = recap(out)
    assert counts["keys-solo"]["changed"] == 0, counts
    assert counts["keys-artifact"]["changed"] == 0, counts
    assert managed_lines(podman_host("keys-artifact"), "mlflow-sftp@keys-server") == [
        f"{OPTIONS} {after['keys-server']}"
    ]


# --------------------------------------------------------------------------- refusals, check mode


def converge_server(*options: str, check: bool = True, **extra_vars: str):
    """converge.yml limited to keys-server, with OPTIONS (e.g. --check) and EXTRA_VARS as -e name=value."""
    extra = [arg for name, value in extra_vars.items() for arg in ("-e", f"{name}={value}")]
    return run_playbook(SCENARIO_DIR, "converge.yml", *options, "-l", "keys-server", *extra, check=check)


def test_non_rsa_refused_without_sftp_plugin():
    result = converge_server(check=False, mlflow_sftp_plugin_enabled="false", mlops_ssh_key_type="ed25519")
    assert result.returncode != 0
    assert "loads RSA keys only" in result.stdout + result.stderr


def test_rsa_default_without_sftp_plugin_in_check_mode(podman_host):
    """With the plugin off the default type is rsa: a check run plans a rotation, changes nothing."""
    server = podman_host("keys-server")
    before = server.file(f"/home/mlops/.ssh/{KEY_NAME}").sha256sum
    result = converge_server("--check", mlflow_sftp_plugin_enabled="false")
    assert "key type (ED25519) is not rsa" in result.stdout + result.stderr
    assert server.file(f"/home/mlops/.ssh/{KEY_NAME}").sha256sum == before
    assert not server.file(f"/home/mlops/.ssh/{KEY_NAME}.new").exists


def test_check_mode_on_fresh_accounts(podman_host):
    """--check where neither the account nor the key exists yet (a fresh host) succeeds."""
    result = converge_server(
        "--check",
        mlops_account_name="freshuser",
        mlops_account_group="freshgroup",
        mlops_account_home="/home/freshuser",
        mlops_ssh_key_name="id_fresh",
    )
    assert "do(es) not exist yet" in result.stdout + result.stderr
    server = podman_host("keys-server")
    assert not server.user("freshuser").exists
    assert not server.file("/home/freshuser").exists
