"""Unit tests of the mlops_ssh_state probe, on temporary ~/.ssh trees of this machine."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

LIBRARY = Path(__file__).resolve().parents[2] / "library" / "mlops_ssh_state.py"
spec = importlib.util.spec_from_file_location("mlops_ssh_state", LIBRARY)
probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(probe)

MARKER = "# {mark} ANSIBLE MANAGED BLOCK mlops_ssh"
BEGIN = MARKER.replace("{mark}", "BEGIN")
END = MARKER.replace("{mark}", "END")
PRIVATE = b"-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n-----END OPENSSH PRIVATE KEY-----\n"
PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGUJ2G5r1 mlflow-sftp@test"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    ssh = tmp_path / ".ssh"
    ssh.mkdir(mode=0o700)
    ssh.chmod(0o700)
    (ssh / "known_hosts").write_text(f"{BEGIN}\nhost ssh-ed25519 AAAA\n{END}\nother ssh-rsa BBBB\n")
    (ssh / "known_hosts").chmod(0o644)
    (ssh / "config").write_text("Host *\n    User x\n")
    (ssh / "id_test").write_bytes(PRIVATE)
    (ssh / "id_test").chmod(0o600)
    (ssh / "id_test.pub").write_text(PUB + "\n")
    return tmp_path


def test_home_state(home: Path):
    out = probe.probe_home(str(home), "id_test", ["known_hosts", "config"], MARKER, authorized_keys=True)
    st = os.lstat(home / ".ssh")
    assert out["ssh_dir"] == {"exists": True, "type": "dir", "uid": st.st_uid, "gid": st.st_gid,
                              "mode": "0700", "mtime": int(st.st_mtime)}
    assert out["known_hosts"]["block"] == "host ssh-ed25519 AAAA\n"
    assert out["known_hosts"]["mode"] == "0644"
    assert out["config"]["block"] is None, "no markers: no block"
    assert out["key"]["sha256"] == hashlib.sha256(PRIVATE).hexdigest()
    assert out["key"]["mode"] == "0600"
    assert out["key_pub"]["sha256"] == hashlib.sha256((PUB + "\n").encode()).hexdigest()
    assert out["stage"] is False
    assert out["authorized_keys"] == {"exists": False, "type": None, "uid": None, "gid": None,
                                      "mode": None, "lines": [], "plain": True}
    # Never the private key's content, only its digest.
    assert "secret" not in json.dumps(out)
    assert "PRIVATE" not in json.dumps(out)


def test_stage_and_symlinks(home: Path):
    ssh = home / ".ssh"
    (ssh / "id_test.new.pub").write_text(PUB)
    (ssh / "config").unlink()
    (ssh / "config").symlink_to(ssh / "known_hosts")
    out = probe.probe_home(str(home), "id_test", ["known_hosts", "config"], MARKER)
    assert out["stage"] is True
    assert out["config"]["type"] == "link"
    assert out["config"]["block"] is None, "a symlink is never followed"
    missing = probe.probe_home(str(home / "nobody"), "id_test", ["config"], MARKER)
    assert missing["ssh_dir"]["exists"] is False
    assert missing["config"]["block"] is None
    assert missing["key"]["sha256"] is None


@pytest.mark.parametrize(
    "text",
    [
        f"{BEGIN}\na\n{END}\n{BEGIN}\na\n{END}\n",  # two blocks
        f"{END}\na\n{BEGIN}\n",  # out of order
        f"{BEGIN}\na\n",  # no end
        f" {BEGIN}\na\n{END}\n",  # not the exact marker line
    ],
)
def test_ambiguous_block_is_none(text: str):
    assert probe.managed_block(text.encode(), MARKER) is None


def test_block_at_end_of_file_without_newline():
    assert probe.managed_block(f"x\n{BEGIN}\na\nb\n{END}".encode(), MARKER) is None
    assert probe.managed_block(f"x\n{BEGIN}\na\nb\n{END}\n".encode(), MARKER) == "a\nb\n"


def test_authorized_keys_lines_and_plain(home: Path):
    ak = home / ".ssh" / "authorized_keys"
    ak.write_bytes(b'restrict,command="internal-sftp" ' + PUB.encode() + b"\n# admin\n")
    out = probe.probe_home(str(home), authorized_keys=True)["authorized_keys"]
    assert out["lines"] == ['restrict,command="internal-sftp" ' + PUB, "# admin"]
    assert out["plain"] is True
    for odd in (b"x\xc2\xa0y mlflow-sftp@test\n", b"a b\r\n", b"a\x0cb\n"):
        ak.write_bytes(odd)
        out = probe.probe_home(str(home), authorized_keys=True)["authorized_keys"]
        assert out["plain"] is False, odd
        assert len(out["lines"]) == 1, "split at newlines only, as lineinfile"


def test_key_info(home: Path):
    key = str(home / ".ssh" / "id_test")
    calls = []

    def run(argv):
        calls.append(argv)
        return 0, "256 SHA256:abc mlflow-sftp@test (ED25519)"

    out = probe.key_info(key, run)
    assert out["exists"] is True
    assert out["info_rc"] == 0
    assert out["info"].endswith("(ED25519)")
    assert out["pub"] == PUB
    assert calls == [["ssh-keygen", "-l", "-f", key + ".pub"]]
    assert probe.key_info(key + "-missing", run)["exists"] is False
    assert len(calls) == 1, "no ssh-keygen for a missing key"


def test_host_keys(tmp_path: Path):
    (tmp_path / "ssh_host_rsa_key.pub").write_text("ssh-rsa BBBB root@h\n")
    (tmp_path / "ssh_host_ed25519_key.pub").write_text("ssh-ed25519 AAAA root@h\n")
    (tmp_path / "ssh_host_ed25519_key").write_text("private\n")
    (tmp_path / "ssh_host_x_key.pub").mkdir()
    files, lines = probe.host_keys(str(tmp_path))
    assert [Path(f).name for f in files] == ["ssh_host_ed25519_key.pub", "ssh_host_rsa_key.pub"]
    assert lines == ["ssh-ed25519 AAAA root@h", "ssh-rsa BBBB root@h"]
    assert probe.host_keys(str(tmp_path / "missing")) == ([], [])


def test_module_run(home: Path, tmp_path: Path, monkeypatch, capsys):
    """The whole module, as Ansible runs it, for the current user (its home pointed at HOME)."""
    import pwd

    me = pwd.getpwuid(os.getuid()).pw_name
    monkeypatch.setattr(probe, "user_entry", lambda name: (
        {"uid": os.getuid(), "gid": os.getgid(), "home": str(home)} if name == me else None))
    args = {"users": [me, "no-such-user-x"], "key_name": "id_test", "block_files": ["known_hosts"],
            "host_keys": True, "host_keys_dir": str(tmp_path / "none"), "_ansible_check_mode": True}
    with patch_module_args(args), pytest.raises(SystemExit):
        probe.main()
    result = json.loads(capsys.readouterr().out)
    assert result["changed"] is False
    assert result["users"]["no-such-user-x"] is None
    assert list(result["homes"]) == [me]
    assert result["key"]["path"] == str(home / ".ssh" / "id_test")
    assert result["key"]["pub"] == PUB
    assert result["homes"][me]["known_hosts"]["block"] == "host ssh-ed25519 AAAA\n"
    assert "secret" not in json.dumps(result)
