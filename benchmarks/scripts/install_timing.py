"""Runs on a bench host (``python3 -`` on stdin): pip against uv installing MLflow into a fresh venv.

Arguments: the requirement(s), then options as JSON (``rounds``). For each round, in turn: pip
(``python3 -m venv`` + ``pip install``) and uv (``uv venv`` + ``uv pip install``, empty cache, with
and without ``--compile-bytecode``), first as the bench hosts are set up (the mounted /etc/pip.conf:
``find-links = /wheelhouse`` with the index as the fallback; uv is given the same find-links and CA
bundle), then from the wheelhouse alone (``--no-index``, as the role does with
``mlflow_pip_wheelhouse``); finally uv once more with its cache warm. Each venv is removed before the
next. Prints one JSON line: per variant the seconds of venv creation and install, the packages
installed and the venv's size. Standard library only: it runs with the host's own python3.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

VENV = "/root/bench-venv"
UV_CACHE = "/root/bench-uv-cache"
UV = "/usr/local/bin/uv"
WHEELHOUSE = "/wheelhouse"
CA = "/etc/ssl/certs/host-ca-bundle.crt"


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run a command; its wall time, or raise with the tail of its output."""
    started = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}: rc={res.returncode}: {(res.stderr or res.stdout)[-600:]}")
    return wall, res.stdout


def size_mb(path: str) -> float:
    """The disk use of a directory tree, MiB."""
    out = subprocess.run(["du", "-sk", path], capture_output=True, text=True, check=True).stdout
    return round(int(out.split()[0]) / 1024, 1)


def packages(venv: str) -> int:
    """How many distributions the venv holds (its *.dist-info directories)."""
    site = subprocess.run(
        [f"{venv}/bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return sum(1 for n in os.listdir(site) if n.endswith(".dist-info"))


def variant(tool: str, reqs: list[str], no_index: bool, compile_pyc: bool, warm: bool) -> dict:
    """One fresh venv and one install of reqs: seconds, packages, size."""
    shutil.rmtree(VENV, ignore_errors=True)
    if not warm:
        shutil.rmtree(UV_CACHE, ignore_errors=True)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    if tool == "pip":
        venv_s, _ = timed(["python3", "-m", "venv", VENV], env)
        cmd = [f"{VENV}/bin/pip", "install", "-q", *(["--no-index"] if no_index else []), *reqs]
    else:
        env.update({"UV_CACHE_DIR": UV_CACHE, "SSL_CERT_FILE": CA, "UV_NO_PROGRESS": "1"})
        venv_s, _ = timed([UV, "venv", "-q", "--python", "/usr/bin/python3", VENV], env)
        cmd = [UV, "pip", "install", "-q", "--python", f"{VENV}/bin/python", "--find-links", WHEELHOUSE]
        cmd += ["--no-index"] if no_index else []
        cmd += ["--compile-bytecode"] if compile_pyc else []
        cmd += reqs
    install_s, _ = timed(cmd, env)
    version = subprocess.run(
        [UV, "--version"] if tool == "uv" else [f"{VENV}/bin/pip", "--version"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split(" from ")[0]
    return {
        "tool": tool,
        "version": version.strip(),
        "source": "wheelhouse only (--no-index)" if no_index else "wheelhouse + index",
        "compile_bytecode": compile_pyc,
        "uv_cache": ("warm" if warm else "empty") if tool == "uv" else "-",
        "venv_s": round(venv_s, 2),
        "install_s": round(install_s, 1),
        "total_s": round(venv_s + install_s, 1),
        "packages": packages(VENV),
        "size_mb": size_mb(VENV),
    }


def main() -> None:
    """Every variant, rounds times, in turn; a failed variant is recorded with its error."""
    reqs = [a for a in sys.argv[1:] if not a.startswith("{")]
    opts = json.loads(next((a for a in sys.argv[1:] if a.startswith("{")), "{}"))
    plan = []
    for _ in range(opts.get("rounds", 1)):
        for no_index in (False, True):
            plan += [("pip", no_index, True, False), ("uv", no_index, True, False)]
            if not no_index:
                plan.append(("uv", no_index, False, False))
    plan.append(("uv", False, True, True))
    out = []
    for tool, no_index, compile_pyc, warm in plan:
        try:
            out.append(variant(tool, reqs, no_index, compile_pyc, warm))
        except RuntimeError as exc:
            out.append({"tool": tool, "no_index": no_index, "error": str(exc)})
        print(json.dumps(out[-1]), file=sys.stderr, flush=True)
    shutil.rmtree(VENV, ignore_errors=True)
    shutil.rmtree(UV_CACHE, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
