"""The SFTP artifact repository against a real sshd: auth, host keys, operations, dropped connections."""

from __future__ import annotations

import contextlib
import filecmp
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import ClientHome, Keys
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from sshd_server import Sshd

from mlflow_sftp_store import (
    SftpArtifactRepository,
    SftpAuthenticationError,
    SftpHostKeyError,
    SftpPermissionError,
    SftpUriError,
)
from mlflow_sftp_store.config import parse_uri, resolve_target
from mlflow_sftp_store.connection import get_pool
from mlflow_sftp_store.repository import PART_SUFFIX


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _roundtrip(repo: SftpArtifactRepository, tmp_path: Path, remote_root: Path) -> None:
    src = _write(tmp_path / "src" / "hello.txt", b"hello over sftp\n")
    repo.log_artifact(str(src), "sub")
    assert (remote_root / "sub" / "hello.txt").read_bytes() == b"hello over sftp\n"
    [info] = repo.list_artifacts("sub")
    assert (info.path, info.is_dir, info.file_size) == ("sub/hello.txt", False, 16)
    out = tmp_path / "out"
    out.mkdir()
    got = repo.download_artifacts("sub/hello.txt", str(out))
    assert Path(got).read_bytes() == b"hello over sftp\n"


# --------------------------------------------------------------------------- registration


def test_entry_point_overrides_builtin_sftp_store(ready_home: ClientHome, tmp_path: Path) -> None:
    repo = get_artifact_repository(ready_home.uri(tmp_path / "remote"))
    assert type(repo) is SftpArtifactRepository


# --------------------------------------------------------------------------- authentication


@pytest.mark.parametrize("ktype", ["rsa", "ed25519", "ecdsa"])
def test_default_key_path_of_each_type(home: ClientHome, keys: Keys, tmp_path: Path, ktype: str) -> None:
    home.install_key(keys.authorized[ktype], f"id_{ktype}")
    home.write_known_hosts(home.known_host_line("bracket"))
    remote = tmp_path / "remote"
    _roundtrip(SftpArtifactRepository(home.uri(remote)), tmp_path, remote)


def test_ssh_config_host_alias_identityfile_port_user(home: ClientHome, keys: Keys, tmp_path: Path) -> None:
    keydir = home.root / "elsewhere"
    keydir.mkdir()
    key = keydir / "deploy_key"
    key.write_bytes(keys.authorized["rsa"].read_bytes())
    key.chmod(0o600)
    home.write_config(
        f"Host artifacts\n    HostName {home.sshd.host}\n    Port {home.sshd.port}\n"
        f"    User root\n    IdentityFile ~/elsewhere/deploy_key\n"
    )
    home.write_known_hosts(home.known_host_line("bracket"))
    remote = tmp_path / "remote"
    repo = SftpArtifactRepository(f"sftp://artifacts{remote}")
    assert repo.target.display == f"root@{home.sshd.host}:{home.sshd.port}"
    assert repo.target.identity_files[0] == str(key)
    _roundtrip(repo, tmp_path, remote)


def test_ssh_agent_key(home: ClientHome, keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", "-q", str(keys.authorized["ecdsa"])], env=env, check=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        home.write_known_hosts(home.known_host_line("bracket"))
        remote = tmp_path / "remote"
        _roundtrip(SftpArtifactRepository(home.uri(remote)), tmp_path, remote)
    finally:
        agent.terminate()
        agent.wait(5)


def test_auth_failure_names_keys_tried_without_key_material(
    home: ClientHome, keys: Keys, tmp_path: Path
) -> None:
    installed = home.install_key(keys.unauthorized, "id_ed25519")
    home.write_known_hosts(home.known_host_line("bracket"))
    repo = SftpArtifactRepository(home.uri(tmp_path / "remote"))
    with pytest.raises(SftpAuthenticationError) as err:
        repo.list_artifacts()
    msg = str(err.value)
    assert str(installed) in msg and "rejected" in msg and "'root'" in msg
    assert str(home.ssh / "id_rsa") in msg  # default paths that were looked for
    body = "".join(installed.read_text().splitlines()[1:-1])
    assert body[:40] not in msg and "PRIVATE KEY" not in msg


def test_passphrase_protected_key_gives_clear_error(home: ClientHome, keys: Keys, tmp_path: Path) -> None:
    home.install_key(keys.encrypted, "id_ed25519")
    home.write_known_hosts(home.known_host_line("bracket"))
    with pytest.raises(SftpAuthenticationError, match="passphrase-protected"):
        SftpArtifactRepository(home.uri(tmp_path / "remote")).list_artifacts()


# --------------------------------------------------------------------------- host keys


@pytest.mark.parametrize("form", ["bare", "bracket"])
@pytest.mark.parametrize("hashed", [False, True], ids=["plain", "hashed"])
def test_known_hosts_forms(home: ClientHome, keys: Keys, tmp_path: Path, form: str, hashed: bool) -> None:
    home.install_key(keys.authorized["ed25519"], "id_ed25519")
    kh = home.write_known_hosts("# comment", home.known_host_line(form), hashed=hashed)
    if hashed:
        assert "|1|" in kh.read_text() and home.sshd.host not in kh.read_text()
    remote = tmp_path / "remote"
    _roundtrip(SftpArtifactRepository(home.uri(remote)), tmp_path, remote)


def test_known_hosts_with_only_rsa_host_key_negotiates_rsa(ready_home: ClientHome, tmp_path: Path) -> None:
    ready_home.write_known_hosts(ready_home.known_host_line("bare", ktype="rsa"))
    repo = SftpArtifactRepository(ready_home.uri(tmp_path / "remote"))
    assert repo.list_artifacts() == []


def test_global_known_hosts_file_and_env_override(
    ready_home: ClientHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (ready_home.ssh / "known_hosts").unlink()
    ready_home.write_known_hosts(
        ready_home.known_host_line("bare", ktype="ecdsa"), path=ready_home.global_known_hosts
    )
    assert SftpArtifactRepository(ready_home.uri(tmp_path / "r")).list_artifacts() == []
    other = ready_home.write_known_hosts(ready_home.known_host_line(), path=tmp_path / "kh")
    monkeypatch.setenv("MLFLOW_SFTP_KNOWN_HOSTS", str(other))
    repo = SftpArtifactRepository(ready_home.uri(tmp_path / "r"))
    assert repo.target.known_hosts_files == (str(other),)
    assert repo.list_artifacts() == []


def test_default_known_hosts_files(home: ClientHome) -> None:
    (home.ssh / "config").unlink()
    target = resolve_target(parse_uri("sftp://u@example.org:2222/srv/mlflow"))
    assert target.known_hosts_files == (str(home.ssh / "known_hosts"), "/etc/ssh/ssh_known_hosts")
    assert target.identity_files == tuple(str(home.ssh / n) for n in ("id_ed25519", "id_ecdsa", "id_rsa"))


def test_unknown_host_is_refused_and_not_added(ready_home: ClientHome, tmp_path: Path) -> None:
    kh = ready_home.write_known_hosts(f"[{ready_home.sshd.host}]:1 {ready_home.sshd.host_public_key('rsa')}")
    before = kh.read_text()
    with pytest.raises(SftpHostKeyError) as err:
        SftpArtifactRepository(ready_home.uri(tmp_path / "remote")).list_artifacts()
    msg = str(err.value)
    assert "unknown" in msg and ready_home.sshd.host in msg and f"port {ready_home.sshd.port}" in msg
    assert str(kh) in msg and str(ready_home.global_known_hosts) in msg
    assert kh.read_text() == before


@pytest.mark.parametrize("form", ["bare", "bracket"])
def test_wrong_host_key_is_refused(ready_home: ClientHome, tmp_path: Path, form: str) -> None:
    from sshd_server import keygen

    fake = keygen(tmp_path / "fake_host_key", "ed25519")
    fake_pub = " ".join(Path(f"{fake}.pub").read_text().split()[:2])
    name = ready_home.sshd.host if form == "bare" else f"[{ready_home.sshd.host}]:{ready_home.sshd.port}"
    kh = ready_home.write_known_hosts(f"{name} {fake_pub}")
    with pytest.raises(SftpHostKeyError) as err:
        SftpArtifactRepository(ready_home.uri(tmp_path / "remote")).list_artifacts()
    msg = str(err.value)
    assert "MISMATCH" in msg and f"port {ready_home.sshd.port}" in msg and str(kh) in msg


# --------------------------------------------------------------------------- URIs and permissions


@pytest.mark.parametrize(
    ("uri", "hint"),
    [
        ("sftp://mlops@10.0.0.5:22/~/mlruns", "sftp://mlops@10.0.0.5:22/home/mlops/mlruns"),
        ("sftp://root@10.0.0.5/~", "sftp://root@10.0.0.5:22/root"),
        ("sftp://mlops@10.0.0.5:mlruns", "sftp://mlops@10.0.0.5:22/home/mlops/mlruns"),
        ("sftp://mlops@10.0.0.5:2222", "sftp://mlops@10.0.0.5:2222/home/mlops/mlruns"),
        ("sftp://mlops@10.0.0.5:22/./mlruns", "sftp://mlops@10.0.0.5:22/home/mlops/mlruns"),
    ],
)
def test_uri_must_be_absolute(uri: str, hint: str) -> None:
    with pytest.raises(SftpUriError) as err:
        parse_uri(uri)
    assert hint in str(err.value)


def test_artifact_path_cannot_escape_root(ready_home: ClientHome, tmp_path: Path) -> None:
    repo = SftpArtifactRepository(ready_home.uri(tmp_path / "remote"))
    with pytest.raises(SftpUriError, match="outside the artifact root"):
        repo.list_artifacts("../../etc")


def test_permission_denied_names_path_and_user(home: ClientHome, keys: Keys, tmp_path: Path) -> None:
    home.install_key(keys.readonly, "id_ed25519")
    home.write_known_hosts(home.known_host_line("bracket"))
    remote = tmp_path / "remote"
    remote.mkdir()
    repo = SftpArtifactRepository(home.uri(remote))
    src = _write(tmp_path / "f.txt", b"x")
    with pytest.raises(SftpPermissionError) as err:
        repo.log_artifact(str(src), "deep/dir")
    msg = str(err.value)
    assert str(remote / "deep") in msg and "'root'" in msg and "Permission denied" in msg
    assert repo.list_artifacts() == []  # reading still works


# --------------------------------------------------------------------------- operations


def test_log_list_download_delete_nested(ready_home: ClientHome, tmp_path: Path) -> None:
    remote = tmp_path / "remote" / "exp" / "run"
    repo = SftpArtifactRepository(ready_home.uri(remote))
    assert repo.list_artifacts() == []
    top = _write(tmp_path / "top.txt", b"top")
    repo.log_artifact(str(top))
    tree = tmp_path / "tree"
    _write(tree / "a.bin", os.urandom(300_000))
    _write(tree / "d1" / "b.txt", b"bee")
    _write(tree / "d1" / "d2" / "c.txt", b"sea")
    (tree / "empty").mkdir()
    repo.log_artifacts(str(tree), "model/files")
    repo.log_artifacts(str(tree))

    root = [(f.path, f.is_dir, f.file_size) for f in repo.list_artifacts()]
    assert root == [
        ("a.bin", False, 300_000),
        ("d1", True, None),
        ("empty", True, None),
        ("model", True, None),
        ("top.txt", False, 3),
    ]
    nested = [(f.path, f.is_dir) for f in repo.list_artifacts("model/files/d1")]
    assert nested == [("model/files/d1/b.txt", False), ("model/files/d1/d2", True)]
    assert repo.list_artifacts("top.txt") == []
    assert repo.list_artifacts("missing") == []

    out = tmp_path / "out"
    out.mkdir()
    got = Path(repo.download_artifacts("model/files", str(out)))
    cmp = filecmp.dircmp(tree, got)
    assert not cmp.left_only and not cmp.right_only and not cmp.diff_files
    assert filecmp.cmp(tree / "d1" / "d2" / "c.txt", got / "d1" / "d2" / "c.txt", shallow=False)
    everything = Path(repo.download_artifacts("", str(tmp_path / "out")))
    assert (everything / "top.txt").read_bytes() == b"top"

    repo.delete_artifacts("model/files/d1/b.txt")
    assert [f.path for f in repo.list_artifacts("model/files/d1")] == ["model/files/d1/d2"]
    repo.delete_artifacts("model")
    assert "model" not in [f.path for f in repo.list_artifacts()]
    repo.delete_artifacts("does/not/exist")
    repo.delete_artifacts()
    assert not remote.exists()


def test_pool_is_bounded_and_shared(
    ready_home: ClientHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_SFTP_POOL_SIZE", "2")
    remote = tmp_path / "remote"
    tree = tmp_path / "tree"
    for i in range(12):
        _write(tree / f"f{i}.txt", str(i).encode() * 1000)
    repo1 = SftpArtifactRepository(ready_home.uri(remote))
    repo2 = SftpArtifactRepository(ready_home.uri(remote / "other"))
    repo1.log_artifacts(str(tree))
    threads = [threading.Thread(target=repo2.log_artifacts, args=(str(tree),)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pool = get_pool(repo1.target)
    assert pool is get_pool(repo2.target) and pool.size == 2
    assert 1 <= pool.idle_count() <= 2
    assert len(repo2.list_artifacts()) == 12


# --------------------------------------------------------------------------- dropped connections


def test_dropped_connection_between_calls_recovers(ready_home: ClientHome, tmp_path: Path) -> None:
    sshd: Sshd = ready_home.sshd
    remote = tmp_path / "remote"
    repo = SftpArtifactRepository(ready_home.uri(remote))
    src = _write(tmp_path / "a.txt", b"first")
    repo.log_artifact(str(src))
    assert sshd.kill_sessions() >= 1
    assert [f.path for f in repo.list_artifacts()] == ["a.txt"]
    assert sshd.kill_sessions() >= 1
    src.write_bytes(b"second")
    repo.log_artifact(str(src))
    assert (remote / "a.txt").read_bytes() == b"second"
    assert sshd.kill_sessions() >= 1
    out = tmp_path / "out"
    out.mkdir()
    assert Path(repo.download_artifacts("a.txt", str(out))).read_bytes() == b"second"


def _kill_when(sshd: Sshd, condition, fired: list[float], timeout: float = 30.0) -> threading.Thread:
    def run() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                fired.append(time.monotonic())
                sshd.kill_sessions()
                return
            time.sleep(0.005)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _size_of_parts(directory: Path) -> int:
    try:
        return max((p.stat().st_size for p in directory.glob(f"*{PART_SUFFIX}")), default=0)
    except FileNotFoundError:
        return 0


def test_connection_dropped_mid_upload_and_mid_download(ready_home: ClientHome, tmp_path: Path) -> None:
    sshd: Sshd = ready_home.sshd
    remote = tmp_path / "remote"
    repo = SftpArtifactRepository(ready_home.uri(remote))
    big = _write(tmp_path / "big.bin", os.urandom(96 * 1024 * 1024))
    repo.list_artifacts()  # connection and remote dir warm

    fired: list[float] = []
    watcher = _kill_when(sshd, lambda: _size_of_parts(remote / "x") > 8 * 1024 * 1024, fired)
    repo.log_artifact(str(big), "x")
    watcher.join()
    assert fired, "the upload finished before the session could be killed"
    assert filecmp.cmp(big, remote / "x" / "big.bin", shallow=False)
    assert not list((remote / "x").glob(f"*{PART_SUFFIX}"))

    out = tmp_path / "out"
    out.mkdir()
    local = out / "x" / "big.bin"
    fired.clear()
    watcher = _kill_when(sshd, lambda: local.exists() and local.stat().st_size > 8 * 1024 * 1024, fired)
    got = repo.download_artifacts("x/big.bin", str(out))
    watcher.join()
    assert fired, "the download finished before the session could be killed"
    assert filecmp.cmp(big, got, shallow=False)


def test_frozen_session_times_out_and_recovers(
    ready_home: ClientHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer that stops answering without closing TCP (network cut) is given up after the I/O timeout."""
    monkeypatch.setenv("MLFLOW_SFTP_IO_TIMEOUT", "2")
    monkeypatch.setenv("MLFLOW_SFTP_KEEPALIVE", "5")
    sshd: Sshd = ready_home.sshd
    remote = tmp_path / "remote"
    repo = SftpArtifactRepository(ready_home.uri(remote))
    assert (repo.target.io_timeout, repo.target.keepalive) == (2.0, 5)
    src = _write(tmp_path / "a.txt", b"frozen")
    repo.log_artifact(str(src))
    frozen = sshd.session_pids()
    assert frozen
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert [f.path for f in repo.list_artifacts()] == ["a.txt"]
        assert 1.5 < time.monotonic() - started < 30
    finally:
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_password_is_not_echoed_and_bad_env_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SftpUriError) as err:
        parse_uri("sftp://mlops:hunter2@10.0.0.5:22/~/mlruns")
    assert "hunter2" not in str(err.value) and "mlops:***@" in str(err.value)
    monkeypatch.setenv("MLFLOW_SFTP_POOL_SIZE", "many")
    from mlflow_sftp_store import SftpConfigError
    from mlflow_sftp_store.config import pool_size

    with pytest.raises(SftpConfigError, match="MLFLOW_SFTP_POOL_SIZE"):
        pool_size()


def test_known_hosts_wildcards_and_negation(ready_home: ClientHome, tmp_path: Path) -> None:
    from mlflow_sftp_store.connection import load_known_hosts

    key = ready_home.sshd.host_public_key("ed25519")
    target = resolve_target(parse_uri(ready_home.uri(tmp_path)))
    ready_home.write_known_hosts(f"other.example,127.0.0.* {key}")
    assert len(load_known_hosts(target).keys) == 1
    ready_home.write_known_hosts(f"!127.0.0.1,127.0.0.* {key}", f"[127.0.0.?]:{ready_home.sshd.port} {key}")
    assert len(load_known_hosts(target).keys) == 1  # only the second line applies
    ready_home.write_known_hosts(f"!127.0.0.1,* {key}")
    assert load_known_hosts(target).keys == []


def test_server_hanging_up_after_max_auth_tries_is_an_auth_error(
    home: ClientHome, keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copies = [home.install_key(keys.unauthorized, f"stranger{i}") for i in range(12)]
    monkeypatch.setenv("MLFLOW_SFTP_IDENTITY_FILES", os.pathsep.join(map(str, copies)))
    home.write_known_hosts(home.known_host_line("bracket"))
    with pytest.raises(SftpAuthenticationError, match="stranger0") as err:
        SftpArtifactRepository(home.uri(tmp_path / "remote")).list_artifacts()
    assert "closed the connection" in str(err.value) and "MaxAuthTries" in str(err.value)
