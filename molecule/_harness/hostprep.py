#!/usr/bin/env python3
"""Prepare this machine to run systemd test hosts with Podman.

Steps (each idempotent, each skipped when already satisfied):

* ``check``: within seconds, before anything is installed: root, apt (or every tool already
  present), and how Podman would name-resolve containers. A host whose Podman runs containers
  of its own on the CNI backend without a DNS plugin cannot be switched to netavark without
  breaking them: the run stops here, naming what is missing and the fix.
* ``packages``: install podman, runc, debootstrap, uidmap, openssh-server and sqlite3 when
  missing (Debian/apt). A missing Podman is installed together with netavark, aardvark-dns and
  iptables: with ``--no-install-recommends`` alone apt would pick the CNI plugins, whose
  networks have no DNS. An installed Podman's network stack is left to the ``podman`` step.
* ``images``: build the systemd test images with debootstrap + ``podman import``,
  reusing an image that already exists. ``MOLECULE_IMAGE`` set means "use this prebuilt
  systemd image instead": it is pulled if needed and tagged as the local test image
  (``localhost/mlops-molecule:$MOLECULE_DISTRO``) that every scenario names, so nothing is
  built.
* ``podman``: two capabilities, each proven with real containers and only configured when
  missing: (1) a systemd container boots (else write the ``containers.conf`` settings that
  make it boot on hybrid-cgroup kernels with low rlimits: runc + cgroupfs + lower ulimits);
  (2) two containers on a user network resolve each other by name (else install netavark
  and aardvark-dns and set ``network_backend = "netavark"``). A host where both already work
  (a typical CI runner) is left as it is.
* ``wheels``: download, once per distro, the wheels the test hosts install (MLflow and its
  dependencies, scikit-learn for the client, paramiko, build tools) into
  ``.cache/wheelhouse/DISTRO``; scenarios mount it with ``molecule/_harness/pip.conf``.

Usage: ``hostprep.py [all|check|packages|images|podman|wheels] [--distro debian12 ...]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import NoReturn

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
CONTAINERS_CONF_HEADER = """\
# Settings added by molecule/_harness/hostprep.py, each only because a capability the test
# hosts need was missing on this machine (README.md, "What `make` installs and changes on
# this machine"). Podman reads this file over /usr/share/containers/containers.conf.
"""
# What each capability needs, when Podman's defaults do not give it.
SYSTEMD_SETTINGS = {
    # Hybrid cgroups refuse crun; rlimits above the machine's hard limits refuse to start.
    "containers": {"default_ulimits": ["nofile=8192:8192", "nproc=8192:8192"]},
    "engine": {"runtime": "runc", "cgroup_manager": "cgroupfs"},
}
DNS_SETTINGS = {
    # The CNI backend Debian falls back to has no DNS plugin: names do not resolve.
    "network": {"network_backend": "netavark"},
}
# Containers this project makes (test hosts, sandbox, benchmarks, hostprep's own checks).
OWN_IMAGE_PREFIX = IMAGE_REPO + ":"
DNS_NETWORK = "hostprep-dns"
FIX_HINT = 'see README.md, "What `make` installs and changes on this machine"'
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


def podman(*args: str) -> subprocess.CompletedProcess:
    """`podman ARGS`, its output captured, never raising on failure."""
    return subprocess.run(["podman", *args], check=False, capture_output=True, text=True)


def image_name(distro: str) -> str:
    return f"{IMAGE_REPO}:{distro}"


def stop(missing: str, fix: str) -> NoReturn:
    """End the run with what is missing and how to fix it."""
    raise SystemExit(f"hostprep: MISSING: {missing}\nhostprep: FIX: {fix}")


def have(cmd: str) -> bool:
    """True when CMD is on PATH or in /usr/sbin (root's tools on a minimal PATH)."""
    return shutil.which(cmd) is not None or Path(f"/usr/sbin/{cmd}").exists()


# Command (or file) that shows a package is there -> the Debian package.
PACKAGES = {
    "podman": "podman",
    "runc": "runc",
    "debootstrap": "debootstrap",
    "newuidmap": "uidmap",
    # sshd and sqlite3 serve the unit tests (the SFTP plugin's tests start a real sshd).
    "sshd": "openssh-server",
    "sqlite3": "sqlite3",
}
# Podman's network stack with DNS: netavark with its DNS server; netavark 1.4 drives iptables.
# Installed together with Podman, or later only when containers cannot resolve each other's
# names (a Podman that already works on its own stack is left alone).
NETWORK_PACKAGES = {
    "/usr/lib/podman/netavark": "netavark",
    "/usr/lib/podman/aardvark-dns": "aardvark-dns",
    "iptables": "iptables",
}
# Podman looks for its network helpers in these directories (containers.conf helper_binaries_dir).
HELPER_DIRS = ["/usr/local/libexec/podman", "/usr/local/lib/podman", "/usr/libexec/podman", "/usr/lib/podman"]


def helper_present(name: str) -> bool:
    """True when Podman's network helper NAME (netavark, aardvark-dns) is installed."""
    return any(Path(d, name).exists() for d in HELPER_DIRS)


def package_present(probe: str) -> bool:
    """True when the package behind PROBE (a command, or a helper's path) is installed."""
    if probe.startswith("/"):
        return helper_present(Path(probe).name)
    return have(probe)


def missing_packages(wanted: dict[str, str] | None = None) -> list[str]:
    """The Debian packages of WANTED (default: PACKAGES, plus the network stack while Podman
    itself is missing) that this machine lacks."""
    if wanted is None:
        wanted = PACKAGES if have("podman") else {**PACKAGES, **NETWORK_PACKAGES}
    return [pkg for probe, pkg in wanted.items() if not package_present(probe)]


def podman_json(*args: str) -> object:
    """`podman ARGS --format json`, parsed; None when Podman fails."""
    out = podman(*args, "--format", "json")
    return json.loads(out.stdout or "null") if out.returncode == 0 else None


def network_backend() -> str:
    """The network backend Podman uses now ("netavark" or "cni"), "" when it cannot say."""
    out = podman("info", "--format", "{{.Host.NetworkBackend}}")
    return out.stdout.strip() if out.returncode == 0 else ""


def foreign_containers() -> list[str]:
    """Containers on this machine that this project did not make (their image is not ours)."""
    listed = podman_json("ps", "-a") or []
    return [
        (c.get("Names") or ["?"])[0]
        for c in listed
        if not str(c.get("Image", "")).startswith(OWN_IMAGE_PREFIX)
    ]


def check_host() -> None:
    """Fail within seconds, before any change, on what hostprep cannot fix by itself."""
    if os.geteuid() != 0:
        stop("root (rootful Podman, apt)", "run `make` as root, e.g. `sudo make sandbox`")
    missing = missing_packages()
    if missing and shutil.which("apt-get") is None:
        stop(
            f"{' '.join(missing)} (and no apt-get to install them)",
            f"install them with your package manager; {FIX_HINT}",
        )
    if not have("podman"):
        log(
            "podman not installed yet: it will be installed with netavark and aardvark-dns (container name "
            "resolution)"
        )
        return
    backend = network_backend()
    if backend == "cni" and not Path("/usr/lib/cni/dnsname").exists():
        others = foreign_containers()
        if others:
            stop(
                "container name resolution: Podman uses the CNI network backend without a DNS plugin, and "
                f"this machine has containers of its own on it ({', '.join(others[:5])})",
                "either install golang-github-containernetworking-plugin-dnsname (keeps CNI), or move to "
                "netavark: `apt-get install netavark aardvark-dns`, remove or recreate those containers' "
                'networks, and set `network_backend = "netavark"` under [network] in '
                "/etc/containers/containers.conf; " + FIX_HINT,
            )
        log("Podman uses CNI without a DNS plugin: the podman step moves it to netavark + aardvark-dns")
    elif backend:
        log(f"Podman network backend: {backend}")


def apt_install(packages: list[str]) -> None:
    """apt-get install PACKAGES without recommends, refreshing the lists first."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-qq"], env=env)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], env=env)


def ensure_packages() -> None:
    """Install the PACKAGES this machine lacks (podman together with its network stack)."""
    missing = missing_packages()
    if not missing:
        log(f"packages present: {' '.join(PACKAGES.values())}")
        return
    log(f"installing {' '.join(missing)}")
    apt_install(missing)


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
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--dest",
        str(dest),
        "--only-binary=:all:",
        "--python-version",
        PYTHON_OF[distro],
        "--implementation",
        "cp",
    ]
    for plat in platforms:
        cmd += ["--platform", plat]
    run([*cmd, *WHEELS])
    for extra in WHEELS_EXTRA:
        run([*cmd, *extra])
    stamp.write_text(wanted)
    log(
        f"wheelhouse {dest.relative_to(ROOT)}: {len(list(dest.glob('*.whl')))} wheels in "
        f"{time.monotonic() - started:.0f} s"
    )


def image_exists(name: str) -> bool:
    return podman("image", "exists", name).returncode == 0


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
    name = f"hostprep-trial-{os.getpid()}"
    try:
        started = podman("run", "-d", "--name", name, "--systemd=always", image, "/lib/systemd/systemd")
        if started.returncode != 0:
            log(f"trial container did not start: {started.stderr.strip()[-300:]}")
            return False
        for _ in range(60):
            state = podman("exec", name, "systemctl", "is-system-running").stdout.strip()
            if state in ("running", "degraded"):
                return True
            time.sleep(0.5)
        log(f"trial container booted but systemd says {state!r}")
        return False
    finally:
        podman("rm", "-f", "-t", "0", name)


def read_containers_conf() -> dict:
    """/etc/containers/containers.conf as a dict ({} when absent)."""
    if not CONTAINERS_CONF.exists():
        return {}
    try:
        return tomllib.loads(CONTAINERS_CONF.read_text())
    except tomllib.TOMLDecodeError as exc:
        stop(f"a readable {CONTAINERS_CONF} ({exc})", f"fix or move that file away; {FIX_HINT}")


def toml_value(value: object) -> str:
    """One TOML value (strings, numbers, booleans, lists of them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def toml_table(name: str, table: dict) -> list[str]:
    """The lines of table NAME, its sub-tables after its own keys."""
    lines = [f"[{name}]"]
    lines += [f"{key} = {toml_value(val)}" for key, val in table.items() if not isinstance(val, dict)]
    for key, val in table.items():
        if isinstance(val, dict):
            lines += ["", *toml_table(f"{name}.{key}", val)]
    return lines


def add_containers_conf(settings: dict[str, dict]) -> None:
    """Merge SETTINGS into /etc/containers/containers.conf, keeping every other setting there."""
    current = read_containers_conf()
    merged = {section: dict(values) for section, values in current.items()}
    for section, values in settings.items():
        merged.setdefault(section, {}).update(values)
    if merged == current:
        return
    if CONTAINERS_CONF.exists() and not CONTAINERS_CONF.read_text().startswith(CONTAINERS_CONF_HEADER):
        backup = CONTAINERS_CONF.with_suffix(".conf.hostprep-backup")
        if not backup.exists():
            shutil.copy2(CONTAINERS_CONF, backup)
            log(f"saved the existing {CONTAINERS_CONF} as {backup}")
    lines = [CONTAINERS_CONF_HEADER.rstrip()]
    for section, values in merged.items():
        lines += ["", *toml_table(section, values)]
    CONTAINERS_CONF.parent.mkdir(parents=True, exist_ok=True)
    CONTAINERS_CONF.write_text("\n".join(lines) + "\n")
    log(f"wrote {', '.join(f'[{s}] ' + ', '.join(v) for s, v in settings.items())} to {CONTAINERS_CONF}")


def names_resolve(image: str) -> bool:
    """True when a container on a user network resolves another one there by its name."""
    tag = f"{os.getpid()}"
    server, network = f"hostprep-dns-{tag}", f"{DNS_NETWORK}-{tag}"
    try:
        made = podman("network", "create", network)
        if made.returncode != 0:
            log(f"could not create a test network: {made.stderr.strip()[-300:]}")
            return False
        started = podman("run", "-d", "--name", server, "--network", network, image, "sleep", "60")
        if started.returncode != 0:
            log(f"name-resolution test container did not start: {started.stderr.strip()[-300:]}")
            return False
        for _ in range(10):
            looked = podman("run", "--rm", "--network", network, image, "getent", "hosts", server)
            if looked.returncode == 0:
                return True
            time.sleep(0.5)
        log(
            f"a container on network {network} could not resolve {server} (backend "
            f"{network_backend() or '?'})"
        )
        return False
    finally:
        podman("rm", "-f", "-t", "0", server)
        podman("network", "rm", "-f", network)


def remove_own_containers() -> None:
    """Remove this project's containers (test hosts are disposable) before a network backend switch."""
    own = [
        (c.get("Names") or [""])[0]
        for c in podman_json("ps", "-a") or []
        if str(c.get("Image", "")).startswith(OWN_IMAGE_PREFIX)
    ]
    if own:
        log(f"removing this project's containers before the backend switch: {' '.join(own)}")
        run(["podman", "rm", "-f", "-t", "0", *own], stdout=subprocess.DEVNULL)


def ensure_podman(image: str) -> None:
    """Prove the two container capabilities the suite needs; configure only the missing one."""
    if systemd_boots(image):
        log("systemd containers boot with this host's Podman configuration")
    else:
        add_containers_conf(SYSTEMD_SETTINGS)
        if not systemd_boots(image):
            stop("systemd containers do not boot even with runc, cgroupfs and nofile/nproc 8192", FIX_HINT)
        log("systemd containers boot now")
    if names_resolve(image):
        log("containers on a user network resolve each other's names")
        return
    others = foreign_containers()
    if others:
        stop(
            "container name resolution, and this machine has containers of its own "
            f"({', '.join(others[:5])})",
            'install netavark and aardvark-dns and set network_backend = "netavark" under [network] in '
            f"{CONTAINERS_CONF} once those containers can be recreated; {FIX_HINT}",
        )
    missing = missing_packages(NETWORK_PACKAGES)
    if missing:
        log(f"installing {' '.join(missing)}")
        apt_install(missing)
    remove_own_containers()
    add_containers_conf(DNS_SETTINGS)
    if not names_resolve(image):
        stop("container name resolution even with netavark and aardvark-dns", FIX_HINT)
    log("containers on a user network resolve each other's names now (netavark + aardvark-dns)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "step", nargs="?", default="all", choices=["all", "check", "packages", "images", "podman", "wheels"]
    )
    parser.add_argument(
        "--distro",
        action="append",
        choices=sorted(DISTROS),
        help="image(s) to build (default: $MOLECULE_DISTRO or debian12; repeat for more)",
    )
    args = parser.parse_args()
    distros = args.distro or [os.environ.get("MOLECULE_DISTRO", "debian12")]
    prebuilt = os.environ.get("MOLECULE_IMAGE")
    if args.step in ("all", "check"):
        check_host()
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
