"""Part files: a retry removes only its own; abandoned ones (killed processes) go by age, nothing else."""

from __future__ import annotations

import filecmp
import os
import threading
import time
from pathlib import Path

import pytest
from conftest import ClientHome
from sshd_server import Sshd

from mlflow_sftp_store import SftpArtifactRepository, SftpConfigError
from mlflow_sftp_store.parts import PART_SUFFIX, is_part_name, part_name

MIB = 1024 * 1024
DAY = 24 * 3600


def _parts(directory: Path) -> set[str]:
    return {p.name for p in directory.glob(f"*{PART_SUFFIX}")}


def _part_bytes(directory: Path) -> int:
    total = 0
    for p in directory.glob(f"*{PART_SUFFIX}"):
        try:
            total += p.stat().st_size
        except FileNotFoundError:
            pass
    return total


def _touch(path: Path, age: float, data: bytes = b"partial") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def test_part_names_are_unique_per_upload_and_recognised() -> None:
    names = {part_name("model.pkl") for _ in range(1000)}
    assert len(names) == 1000
    one = next(iter(names))
    assert one.startswith(f".model.pkl.{os.getpid()}-") and one.endswith(PART_SUFFIX)
    assert all(is_part_name(n) for n in names)
    long = part_name("é" * 200)  # 400 bytes of UTF-8: cut so the part name still fits NAME_MAX
    assert len(long.encode()) <= 255 and is_part_name(long)
    assert is_part_name(".weights.bin.0123456789ab.mlflow-sftp.part")  # version 1.1's form
    for foreign in (
        ".weights.bin.part",
        "weights.bin.123-0123456789ab.mlflow-sftp.part",  # not hidden
        ".weights.bin.123-0123456789AB.mlflow-sftp.part",  # not our hex
        ".weights.bin.123-0123456789ab.mlflow-sftp.part.bak",
        ".123-0123456789ab.mlflow-sftp.part",  # no name
        ".x.abc-0123456789ab.mlflow-sftp.part",
    ):
        assert not is_part_name(foreign), foreign


def test_parallel_uploads_across_a_dropped_session(
    ready_home: ClientHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six uploads into one directory from threads of two repositories (pool of 4) while every SSH
    session is killed: all arrive complete, each retry removes only its own part file, and the part
    file of another process's upload in progress (fresh) and other files stay untouched."""
    monkeypatch.setenv("MLFLOW_SFTP_POOL_SIZE", "4")
    sshd: Sshd = ready_home.sshd
    remote = tmp_path / "remote"
    target = remote / "shared"
    foreign_part = _touch(target / f".other.bin.{os.getpid() + 1}-0123456789ab{PART_SUFFIX}", 60)
    unrelated = [_touch(target / ".other.bin.part", 2 * DAY), _touch(target / "notes.txt", 2 * DAY)]
    sources = []
    for i in range(6):
        src = tmp_path / "src" / f"file{i}.bin"
        src.parent.mkdir(exist_ok=True)
        src.write_bytes(os.urandom(24 * MIB))
        sources.append(src)
    repos = [SftpArtifactRepository(ready_home.uri(remote)) for _ in range(2)]
    repos[0].list_artifacts()  # connect first

    killed: list[float] = []

    def kill_when_all_are_writing() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(_parts(target)) >= 5 and _part_bytes(target) > 24 * MIB:
                killed.append(time.monotonic())
                sshd.kill_sessions()
                return
            time.sleep(0.005)

    errors: list[BaseException] = []

    def upload(i: int) -> None:
        try:
            repos[i % 2].log_artifact(str(sources[i]), "shared")
        except BaseException as exc:
            errors.append(exc)

    killer = threading.Thread(target=kill_when_all_are_writing, daemon=True)
    killer.start()
    threads = [threading.Thread(target=upload, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    killer.join()
    assert killed, "the uploads finished before the sessions could be killed"
    assert not errors, errors
    for src in sources:
        assert filecmp.cmp(src, target / src.name, shallow=False), src.name
    assert _parts(target) == {foreign_part.name}
    assert all(p.exists() for p in unrelated)


def test_abandoned_part_files_are_swept_by_age_and_only_ours(
    ready_home: ClientHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = tmp_path / "remote"
    repo = SftpArtifactRepository(ready_home.uri(remote))
    src = tmp_path / "model.bin"
    src.write_bytes(b"model")

    def scene(directory: Path) -> tuple[list[Path], list[Path]]:
        stale = [
            _touch(directory / f".model.bin.4242-0123456789ab{PART_SUFFIX}", 25 * 3600),
            _touch(directory / f".old.bin.abcdefabcdef{PART_SUFFIX}", 3 * DAY),  # version 1.1 name
        ]
        kept = [
            _touch(directory / f".fresh.bin.4242-0123456789ab{PART_SUFFIX}", 23 * 3600),
            _touch(directory / ".model.bin.part", 3 * DAY),
            _touch(directory / f"visible.bin.4242-0123456789ab{PART_SUFFIX}", 3 * DAY),
            _touch(directory / f".x.bin.4242-0123456789ab{PART_SUFFIX}.keep", 3 * DAY),
        ]
        subdir = directory / f".dir.4242-0123456789ab{PART_SUFFIX}"
        subdir.mkdir()
        kept.append(_touch(subdir, 3 * DAY))
        return stale, kept

    # An upload sweeps its directory (the server's clock decides the age).
    stale, kept = scene(remote / "up")
    repo.log_artifact(str(src), "up")
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)
    assert (remote / "up" / "model.bin").read_bytes() == b"model"

    # So does a listing, which never shows part files.
    stale, kept = scene(remote / "ls")
    listed = {f.path for f in repo.list_artifacts("ls")}
    assert listed == {"ls/.model.bin.part", f"ls/.x.bin.4242-0123456789ab{PART_SUFFIX}.keep"}
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)

    # The age is configurable; 0 turns the sweeping off.
    monkeypatch.setenv("MLFLOW_SFTP_STALE_PART_HOURS", "0")
    stale, kept = scene(remote / "off")
    repo.log_artifact(str(src), "off")
    repo.list_artifacts("off")
    assert all(p.exists() for p in stale + kept)

    monkeypatch.setenv("MLFLOW_SFTP_STALE_PART_HOURS", "0.5")
    young = _touch(remote / "half" / f".a.bin.1-0123456789ab{PART_SUFFIX}", 20 * 60)
    old = _touch(remote / "half" / f".b.bin.1-0123456789ab{PART_SUFFIX}", 40 * 60)
    repo.log_artifact(str(src), "half")
    assert young.exists() and not old.exists()

    monkeypatch.setenv("MLFLOW_SFTP_STALE_PART_HOURS", "a day")
    with pytest.raises(SftpConfigError, match="MLFLOW_SFTP_STALE_PART_HOURS"):
        repo.list_artifacts("half")
