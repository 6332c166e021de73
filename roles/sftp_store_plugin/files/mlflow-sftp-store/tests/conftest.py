"""Fixtures: a real OpenSSH sshd on 127.0.0.1 and a throwaway client HOME with ~/.ssh."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Test the source next to these tests (also in the `mlflow server` subprocesses: PYTHONPATH), even
# where an older copy of the package is installed (the entry points only name the module). No
# __pycache__ in it: the role copies that directory to the hosts.
sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sshd_server import Sshd, free_port, keygen, sshd_available  # noqa: E402

from mlflow_sftp_store.connection import close_all_pools  # noqa: E402

SRC = str(Path(__file__).resolve().parents[1] / "src")

CLIENT_KEY_TYPES = ("rsa", "ed25519", "ecdsa")


@dataclass
class Keys:
    """Client key pairs made once per session; ``authorized`` ones are in sshd's authorized_keys."""

    authorized: dict[str, Path]
    unauthorized: Path
    encrypted: Path
    readonly: Path


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """One sshd for the whole session (tests that need it are skipped when sshd is absent)."""
    if not sshd_available():
        pytest.skip("needs OpenSSH's sshd (/usr/sbin/sshd) and ssh-keygen, run as root")
    server = Sshd(tmp_path_factory.mktemp("sshd"))
    server.setup()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def keys(sshd: Sshd, tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """Authorized keys of every type, plus an unknown, a passphrase-protected and a read-only key."""
    d = tmp_path_factory.mktemp("client-keys")
    authorized = {}
    for ktype in CLIENT_KEY_TYPES:
        authorized[ktype] = keygen(d / f"id_{ktype}", ktype, comment=f"client-{ktype}")
        sshd.authorize(Path(f"{authorized[ktype]}.pub"))
    unauthorized = keygen(d / "stranger", "ed25519", comment="stranger")
    encrypted = keygen(d / "locked", "ed25519", passphrase="s3cret-pass", comment="locked")
    sshd.authorize(Path(f"{encrypted}.pub"))
    readonly = keygen(d / "readonly", "ed25519", comment="readonly")
    sshd.authorize(Path(f"{readonly}.pub"), options='restrict,command="internal-sftp -R"')
    return Keys(authorized=authorized, unauthorized=unauthorized, encrypted=encrypted, readonly=readonly)


class ClientHome:
    """A fake $HOME: helpers write ~/.ssh keys, known_hosts and config."""

    def __init__(self, root: Path, sshd: Sshd) -> None:
        self.root = root
        self.ssh = root / ".ssh"
        self.ssh.mkdir(mode=0o700, parents=True)
        self.sshd = sshd
        self.global_known_hosts = root / "global_known_hosts"

    def install_key(self, source: Path, name: str | None = None) -> Path:
        """Copy a private key (and .pub) into ~/.ssh under ``name`` (default: its own name)."""
        dest = self.ssh / (name or source.name)
        shutil.copyfile(source, dest)
        shutil.copyfile(f"{source}.pub", f"{dest}.pub")
        dest.chmod(0o600)
        return dest

    def known_host_line(self, form: str = "bracket", ktype: str = "ed25519") -> str:
        """A known_hosts line for our sshd; form is 'bare' (127.0.0.1) or 'bracket' ([127.0.0.1]:port)."""
        name = self.sshd.host if form == "bare" else f"[{self.sshd.host}]:{self.sshd.port}"
        return f"{name} {self.sshd.host_public_key(ktype)}"

    def write_known_hosts(self, *lines: str, hashed: bool = False, path: Path | None = None) -> Path:
        """Write ~/.ssh/known_hosts (optionally hashed with ssh-keygen -H)."""
        target = path or self.ssh / "known_hosts"
        target.write_text("".join(f"{line}\n" for line in lines))
        if hashed:
            subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(target)], check=True, capture_output=True)
            Path(f"{target}.old").unlink(missing_ok=True)
        return target

    def write_config(self, text: str = "") -> None:
        """Write ~/.ssh/config; the global known_hosts file always points into this HOME."""
        (self.ssh / "config").write_text(
            f"{text}\nHost *\n    GlobalKnownHostsFile {self.global_known_hosts}\n"
        )

    def uri(self, path: Path | str, user: str = "root") -> str:
        """sftp:// URI for ``path`` on our sshd."""
        return f"sftp://{user}@{self.sshd.host}:{self.sshd.port}{path}"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sshd: Sshd) -> Iterator[ClientHome]:
    """Point $HOME at a fresh directory, drop the agent and plugin env vars, reset the pools."""
    for var in list(os.environ):
        if var.startswith("MLFLOW_SFTP_") or var == "SSH_AUTH_SOCK":
            monkeypatch.delenv(var)
    root = tmp_path / "home"
    monkeypatch.setenv("HOME", str(root))
    client = ClientHome(root, sshd)
    client.write_config()
    close_all_pools()
    yield client
    close_all_pools()


@pytest.fixture
def ready_home(home: ClientHome, keys: Keys) -> ClientHome:
    """A HOME with an authorized ed25519 key and a plain [host]:port known_hosts line."""
    home.install_key(keys.authorized["ed25519"], "id_ed25519")
    home.write_known_hosts(home.known_host_line("bracket"))
    return home


def _plugin_entry_point_installed() -> bool:
    return any(
        ep.name == "sftp" and ep.value.startswith("mlflow_sftp_store")
        for ep in entry_points(group="mlflow.artifact_repository")
    )


@dataclass
class MlflowServer:
    """A running ``mlflow server``: its URL, the SFTP destination directory, its own empty TMPDIR
    (so a test can see whether it spools uploads there) and its log file."""

    url: str
    remote: Path
    tmpdir: Path
    log: Path


@pytest.fixture
def mlflow_server(
    ready_home: ClientHome, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[MlflowServer]:
    """A proxied-artifacts MLflow server whose destination is our sshd: uvicorn (FastAPI routes), as
    `mlflow server` starts by default, or gunicorn (Flask handlers) when parametrized indirectly with
    "gunicorn"."""
    kind = getattr(request, "param", "uvicorn")
    sgi = ["--gunicorn-opts", "--timeout 300"] if kind == "gunicorn" else []
    assert _plugin_entry_point_installed(), "install the package first: pip install -e ."
    remote = tmp_path / "sftp-artifacts"
    server_tmp = tmp_path / "server-tmp"
    server_tmp.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "HOME": str(ready_home.root),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "PYTHONUNBUFFERED": "1",
        "TMPDIR": str(server_tmp),
        "PYTHONPATH": os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("SSH_AUTH_SOCK", None)
    log = tmp_path / "mlflow-server.log"
    with open(log, "wb") as logfh:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "mlflow", "server",
                "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                "--artifacts-destination", ready_home.uri(remote), *sgi,
            ],
            env=env, stdout=logfh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not answer /health:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        yield MlflowServer(url=url, remote=remote, tmpdir=server_tmp, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if "Traceback" in log.read_text():
            print(log.read_text()[-4000:])
