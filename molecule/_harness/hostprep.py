#!/usr/bin/env python3
"""Prepare this machine to run systemd test hosts with Podman.

Steps (each idempotent, each skipped when already satisfied):

* ``packages``: install podman, runc, debootstrap, uidmap, openssh-server and sqlite3
  when missing (Debian/apt).
* ``images``: build the systemd test images with debootstrap + ``podman import``,
  reusing an image that already exists. ``MOLECULE_IMAGE`` set means "use this prebuilt
  systemd image instead": it is pulled if needed and tagged as the local test image
  (``localhost/mlops-molecule:$MOLECULE_DISTRO``) that every scenario names, so nothing is
  built.
* ``podman``: boot a probe systemd container; only when it does not come up, write the
  ``containers.conf`` that makes systemd containers run on hybrid-cgroup kernels with low
  rlimits (runc + cgroupfs + lower ulimits). A host where systemd containers already
  boot (a typical CI runner) is left as it is.

* ``wheels``: download, once per distro, the wheels the test hosts install (MLflow and its
  dependencies, scikit-learn for the client, paramiko, build tools) into
  ``.cache/wheelhouse/DISTRO``; scenarios mount it with ``molecule/_harness/pip.conf``.

Usage: ``hostprep.py [all|packages|images|podman|wheels] [--distro debian12 ...]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DISTROS = {
    "debian12": "bookworm",
    "debian13": "trixie",
}
IMAGE_REPO = "localhost/mlops-molecule"
ROOT = Path(__file__).resolve().parents[2]
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
# What a bare Debian server has: systemd as PID 1, Python for Ansible, an SSH server.
INCLUDE = [
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "openssh-server",
    "sudo",
    "iproute2",
    "procps",
    "ca-certificates",
]
CONTAINERS_CONF = Path("/etc/containers/containers.conf")
CONTAINERS_CONF_TEXT = """\
# Written by molecule/_harness/hostprep.py because systemd containers did not boot
# with Podman's defaults on this host (hybrid cgroups refuse crun; rlimits above the
# machine's hard limits refuse to start). See README.md, "Test hosts".
[containers]
default_ulimits = ["nofile=8192:8192", "nproc=8192:8192"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"""
# Each container gets its own SSH host keys at first boot (the image ships none, so
# hosts made from one image can still be told apart by known_hosts).
HOSTKEY_UNIT = """\
[Unit]
Description=Generate SSH host keys missing from this host
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
"""


def log(msg: str) -> None:
    print(f"hostprep: {msg}", flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


def image_name(distro: str) -> str:
    return f"{IMAGE_REPO}:{distro}"


def ensure_packages() -> None:
    # sshd and sqlite3 serve the unit tests (the SFTP plugin's tests start a real sshd).
    wanted = {
        "podman": "podman",
        "runc": "runc",
        "debootstrap": "debootstrap",
        "newuidmap": "uidmap",
        "sshd": "openssh-server",
        "sqlite3": "sqlite3",
    }
    missing = [pkg for cmd, pkg in wanted.items() if shutil.which(cmd) is None and not Path(f"/usr/sbin/{cmd}").exists()]
    if not missing:
        log(f"packages present: {' '.join(wanted.values())}")
        return
    log(f"installing {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-qq"], env=env)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)


PYTHON_OF = {"debian12": "3.11", "debian13": "3.13"}
WHEELS = ["mlflow[auth]==3.17.2", "scikit-learn", "paramiko", "setuptools", "wheel"]
# The mlflow scenario's upgrade test starts from the previous release; pip cannot resolve two
# versions of one package in one call, so it is downloaded on its own.
WHEELS_EXTRA = [["mlflow[auth]==3.16.1"]]


def ensure_wheels(distro: str) -> None:
    dest = ROOT / ".cache" / "wheelhouse" / distro
    stamp = dest / ".complete"
    wanted = "\n".join([*WHEELS, *(" ".join(extra) for extra in WHEELS_EXTRA)])
    if stamp.exists() and stamp.read_text() == wanted:
        log(f"wheelhouse {dest.relative_to(ROOT)} complete, reused")
        return
    dest.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    machine = os.uname().machine
    platforms = [f"manylinux_2_28_{machine}", f"manylinux_2_17_{machine}", f"manylinux2014_{machine}"]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--dest", str(dest), "--only-binary=:all:",
           "--python-version", PYTHON_OF[distro], "--implementation", "cp"]
    for plat in platforms:
        cmd += ["--platform", plat]
    run([*cmd, *WHEELS])
    for extra in WHEELS_EXTRA:
        run([*cmd, *extra])
    stamp.write_text(wanted)
    log(f"wheelhouse {dest.relative_to(ROOT)}: {len(list(dest.glob('*.whl')))} wheels in {time.monotonic() - started:.0f} s")


def image_exists(name: str) -> bool:
    return subprocess.run(["podman", "image", "exists", name], check=False).returncode == 0


def build_image(distro: str) -> None:
    name = image_name(distro)
    if image_exists(name):
        log(f"image {name} exists, reused")
        return
    suite = DISTROS[distro]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"rootfs-{distro}-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        log(f"debootstrap {suite} -> {rootfs}")
        run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(INCLUDE)}",
                suite,
                str(rootfs),
                MIRROR,
            ],
            stdout=subprocess.DEVNULL,
        )
        for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
            key.unlink()
        unit = rootfs / "etc/systemd/system/ssh-hostkeys.service"
        unit.write_text(HOSTKEY_UNIT)
        wants = rootfs / "etc/systemd/system/multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        link = wants / "ssh-hostkeys.service"
        if not link.exists():
            link.symlink_to("/etc/systemd/system/ssh-hostkeys.service")
        # Containers have no consoles or hardware clocks to serve.
        for masked in ("getty@tty1.service", "console-getty.service", "systemd-timesyncd.service"):
            target = rootfs / "etc/systemd/system" / masked
            if not target.exists():
                target.symlink_to("/dev/null")
        (rootfs / "etc/machine-id").write_text("")
        shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
        (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
        log(f"podman import -> {name}")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        run(
            ["podman", "import", "--change", 'CMD ["/lib/systemd/systemd"]', "-", name],
            stdin=tar.stdout,
            stdout=subprocess.DEVNULL,
        )
        if tar.wait() != 0:
            raise SystemExit(f"tar of {rootfs} failed")
    log(f"built {name} in {time.monotonic() - started:.0f} s")


def use_prebuilt(image: str, distro: str) -> None:
    if not image_exists(image):
        run(["podman", "pull", image])
    run(["podman", "tag", image, image_name(distro)])
    log(f"MOLECULE_IMAGE={image}: tagged as {image_name(distro)}, nothing built")


def systemd_boots(image: str) -> bool:
    name = f"hostprep-probe-{os.getpid()}"
    try:
        started = subprocess.run(
            ["podman", "run", "-d", "--name", name, "--systemd=always", image, "/lib/systemd/systemd"],
            check=False,
            capture_output=True,
            text=True,
        )
        if started.returncode != 0:
            log(f"probe container did not start: {started.stderr.strip()[-300:]}")
            return False
        for _ in range(60):
            state = subprocess.run(
                ["podman", "exec", name, "systemctl", "is-system-running"],
                check=False,
                capture_output=True,
                text=True,
            ).stdout.strip()
            if state in ("running", "degraded"):
                return True
            time.sleep(0.5)
        log(f"probe container booted but systemd says {state!r}")
        return False
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", name], check=False, capture_output=True)


def ensure_podman(image: str) -> None:
    if systemd_boots(image):
        log("systemd containers boot with this host's Podman configuration; left as it is")
        return
    if CONTAINERS_CONF.exists() and CONTAINERS_CONF.read_text() != CONTAINERS_CONF_TEXT:
        backup = CONTAINERS_CONF.with_suffix(".conf.hostprep-backup")
        shutil.copy2(CONTAINERS_CONF, backup)
        log(f"saved the existing {CONTAINERS_CONF} as {backup}")
    CONTAINERS_CONF.parent.mkdir(parents=True, exist_ok=True)
    CONTAINERS_CONF.write_text(CONTAINERS_CONF_TEXT)
    log(f"wrote {CONTAINERS_CONF} (runc, cgroupfs, nofile/nproc 8192)")
    if not systemd_boots(image):
        raise SystemExit("systemd containers still do not boot; see README.md, 'Test hosts'")
    log("systemd containers boot now")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", nargs="?", default="all", choices=["all", "packages", "images", "podman", "wheels"])
    parser.add_argument(
        "--distro",
        action="append",
        choices=sorted(DISTROS),
        help="image(s) to build (default: $MOLECULE_DISTRO or debian12; repeat for more)",
    )
    args = parser.parse_args()
    distros = args.distro or [os.environ.get("MOLECULE_DISTRO", "debian12")]
    prebuilt = os.environ.get("MOLECULE_IMAGE")
    if args.step in ("all", "packages"):
        ensure_packages()
    if args.step in ("all", "images"):
        if prebuilt:
            use_prebuilt(prebuilt, distros[0])
        else:
            for distro in distros:
                build_image(distro)
    if args.step in ("all", "podman"):
        ensure_podman(image_name(distros[0]))
    if args.step in ("all", "wheels"):
        for distro in distros:
            ensure_wheels(distro)
    return 0


if __name__ == "__main__":
    sys.exit(main())
