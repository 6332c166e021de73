#!/usr/bin/env python3
"""Benchmark: repair of artifact tree permissions on 100,000 files (role artifact_store).

Builds a tree shaped like MLflow's (EXPERIMENTS x RUNS run directories, FILES files each; by
default 10 x 100 x 100 = 100,000 files in 1,011 directories) in a temporary directory on this
machine, then times the role's module `artifact_store_tree` run through Ansible (the real thing:
`ansible localhost -m mlops.mlflow.artifact_store_tree`, found through ansible.cfg's collections_path) on:

  all-wrong   every entry root:root, directories 0700, files 0600 (a manual setup made by root)
  one-percent 1% of the files with a wrong mode (1,000 files)
  all-right   nothing to do: the no-op pass every converge makes

and, for comparison, the same states repaired with `find ... -exec chown/chmod {} +` (detection
pass + fix) and with `ansible.builtin.file recurse=true` (owner/group/`u=rwX,g=rX,o=`; it cannot
give directories 2750 and files 0640 in one pass, so it is only a timing reference).

Run as root from the repository root:
    python3 benchmarks/artifact_permissions/bench_repair.py [--repeat 3] [--no-file-module]
Results: benchmarks/artifact_permissions/results.json, and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
OWNER, GROUP = "nobody", "nogroup"


def sh(*cmd: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command, output captured as text; exit with its output if it fails."""
    result = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        output = f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
        sys.exit(f"{' '.join(cmd)} failed ({result.returncode}):\n{output}")
    return result


def build(root: Path, experiments: int, runs: int, files: int) -> tuple[int, int]:
    """An mlruns-shaped tree of one-byte files; the number of directories and of files."""
    dirs = 1
    count = 0
    root.mkdir()
    for e in range(experiments):
        exp = root / str(e)
        exp.mkdir()
        dirs += 1
        for r in range(runs):
            run = exp / f"{r:032x}"
            run.mkdir()
            dirs += 1
            for f in range(files):
                (run / f"artifact-{f}.bin").write_bytes(b"x")
                count += 1
    return dirs, count


def make_all_wrong(root: Path) -> None:
    """Every entry root:root, directories 0700, files 0600."""
    sh("chown", "-R", "root:root", str(root))
    sh("find", str(root), "-type", "d", "-exec", "chmod", "0700", "{}", "+")
    sh("find", str(root), "-type", "f", "-exec", "chmod", "0600", "{}", "+")


def make_one_percent_wrong(root: Path) -> int:
    """One file per run directory (1% by default) with mode 0644; how many."""
    wrong = 0
    for run in sorted(p for e in root.iterdir() for p in e.iterdir()):
        os.chmod(run / "artifact-0.bin", 0o644)
        wrong += 1
    return wrong


def ansible_env() -> dict:
    """This environment, with Ansible's output as JSON and this Python as the module's interpreter."""
    env = dict(os.environ)
    # The result as JSON; this Python runs the module (no interpreter discovery).
    env.update(
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_DEPRECATION_WARNINGS="0",
    )
    return env


def adhoc(*args: str) -> dict:
    """An ad-hoc `ansible localhost` task; its result for localhost."""
    out = sh("ansible", "localhost", "-i", "localhost,", "-c", "local", *args, env=ansible_env()).stdout
    # raw_decode: ansible.cfg's timer callback prints a line after the JSON document.
    return json.JSONDecoder().raw_decode(out.lstrip())[0]["plays"][0]["tasks"][0]["hosts"]["localhost"]


def timed_adhoc(module: str, module_args: str) -> tuple[float, dict]:
    """An ad-hoc task of MODULE with MODULE_ARGS: wall time and result."""
    start = time.perf_counter()
    result = adhoc("-m", module, "-a", module_args)
    return time.perf_counter() - start, result


def run_module(root: Path) -> tuple[float, dict]:
    """The role's artifact_store_tree module on the tree through Ansible: wall time and result."""
    return timed_adhoc(
        "mlops.mlflow.artifact_store_tree",
        f"path={root} owner={OWNER} group={GROUP} dir_mode=2750 file_mode=0640",
    )


def run_find(root: Path) -> tuple[float, bool]:
    """The command-based alternative: a read-only detection pass, then fixes of wrong entries."""
    # Entries with a wrong owner, group or mode (find's own syntax, one word per argument).
    wrong = f"( ! -user {OWNER} -o ! -group {GROUP} -o -type d ! -perm 2750 -o -type f ! -perm 0640 )".split()
    owners = f"( ! -user {OWNER} -o ! -group {GROUP} )".split()
    start = time.perf_counter()
    found = sh("find", str(root), "-not", "-type", "l", *wrong, "-print", "-quit").stdout.strip()
    if found:
        chown = ("-exec", "chown", "-h", f"{OWNER}:{GROUP}", "{}", "+")
        sh("find", str(root), "-not", "-type", "l", *owners, *chown)
        sh("find", str(root), "-type", "d", "!", "-perm", "2750", "-exec", "chmod", "2750", "{}", "+")
        sh("find", str(root), "-type", "f", "!", "-perm", "0640", "-exec", "chmod", "0640", "{}", "+")
    return time.perf_counter() - start, bool(found)


def run_file_module(root: Path) -> tuple[float, bool]:
    """ansible.builtin.file recurse=true on the tree (a timing reference): wall time and changed."""
    seconds, result = timed_adhoc(
        "ansible.builtin.file",
        f"path={root} state=directory recurse=true owner={OWNER} group={GROUP} mode=u=rwX,g=rX,o=",
    )
    return seconds, result.get("changed", False)


def median(values: list[float]) -> float:
    """Median, rounded to milliseconds."""
    return round(statistics.median(values), 3)


def nothing() -> None:
    """No preparation: the tree stays as the previous case left it."""


class Case(NamedTuple):
    """One measurement: a method on the tree in one state, repeat times, each after prepare()."""

    method: str
    state: str
    prepare: Callable[[], object]
    runner: Callable[[Path], tuple[float, object]]
    changed: bool
    repeat: int


def cases(root: Path, args: argparse.Namespace) -> list[Case]:
    """Every measurement, in the order they run (each state prepared from the previous one)."""
    all_wrong = functools.partial(make_all_wrong, root)
    one_percent = functools.partial(make_one_percent_wrong, root)
    module, find = "artifact_store_tree module", "find -exec (detect + fix)"
    out = [
        Case(module, "all-wrong", all_wrong, run_module, True, args.repeat),
        Case(module, "one-percent", one_percent, run_module, True, args.repeat),
        Case(module, "all-right", nothing, run_module, False, args.repeat),
        Case(find, "all-wrong", all_wrong, run_find, True, args.repeat),
        Case(find, "one-percent", one_percent, run_find, True, args.repeat),
        Case(find, "all-right", nothing, run_find, False, args.repeat),
    ]
    if not args.no_file_module:
        # Minutes per pass: once is enough for a reference.
        file_module = "ansible.builtin.file recurse"
        out += [
            Case(file_module, "all-wrong", all_wrong, run_file_module, True, 1),
            Case(file_module, "all-right", nothing, run_file_module, False, 1),
        ]
    return out


def run_case(root: Path, case: Case) -> dict:
    """Time the case's runner on the tree; its row of medians (and the module's own counts)."""
    name, state = case.method, case.state
    walls, inner, result = [], [], {}
    for _ in range(case.repeat):
        case.prepare()
        wall, result = case.runner(root)
        if isinstance(result, dict):
            changed = result["changed"]
            inner.append(result["elapsed"])
        else:
            changed = result
        assert changed == case.changed, (name, state, result)
        walls.append(wall)
    row = {"method": name, "state": state, "wall_s": median(walls), "runs": len(walls), "changed": changed}
    if inner:
        row["module_s"] = median(inner)
        row["dirs_fixed"] = result["dirs_fixed"]
        row["files_fixed"] = result["files_fixed"]
        row["dirs_seen"] = result["dirs"]
        row["files_seen"] = result["files"]
    print(f"{name:28} {state:12} {row['wall_s']:8.2f} s", file=sys.stderr)
    return row


def measure(args: argparse.Namespace, base: Path) -> dict:
    """Build the tree under base, time every method and state, then Ansible's start-up alone."""
    root = base / "mlruns"
    t0 = time.perf_counter()
    dirs, files = build(root, args.experiments, args.runs, args.files)
    build_s = round(time.perf_counter() - t0, 1)
    print(f"built {files} files in {dirs} directories under {root} in {build_s} s", file=sys.stderr)
    rows = [run_case(root, case) for case in cases(root, args)]
    run_module(root)  # leave the tree right for the next no-op case
    # Ansible's own start-up, for reading the module's wall times: the module on an empty root.
    empty = base / "empty"
    empty.mkdir()
    sh("chown", f"{OWNER}:{GROUP}", str(empty))
    empty.chmod(0o2750)
    overhead = median([run_module(empty)[0] for _ in range(args.repeat)])
    return {
        "tree": {"directories": dirs, "files": files, "build_s": build_s},
        "ansible_overhead_s": overhead,
        "results": rows,
    }


def print_table(measured: dict, repeat: int) -> None:
    """The results as a markdown table on stdout."""
    tree, overhead = measured["tree"], measured["ansible_overhead_s"]
    print(
        f"Tree: {tree['files']:,} files in {tree['directories']:,} directories; Ansible start-up "
        f"(module on an empty root): {overhead:.2f} s; median of {repeat} runs unless noted.\n"
    )
    print("| method | tree state | wall time (s) | in module (s) | fixed dirs / files | changed |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for row in measured["results"]:
        fixed = f"{row['dirs_fixed']:,} / {row['files_fixed']:,}" if "dirs_fixed" in row else "-"
        module_s = f"{row['module_s']:.2f}" if "module_s" in row else "-"
        note = "" if row["runs"] > 1 else " (1 run)"
        print(
            f"| {row['method']}{note} | {row['state']} | {row['wall_s']:.2f} | {module_s} | {fixed} | "
            f"{str(row['changed']).lower()} |"
        )


def main() -> int:
    """Build the tree, measure, write the results JSON and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=10)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    # S108: a default place for the temporary tree (made with mkdtemp under it), not a fixed file.
    parser.add_argument("--dir", default="/var/tmp", help="where the temporary tree is built")  # noqa: S108
    parser.add_argument(
        "--no-file-module", action="store_true", help="skip the ansible.builtin.file reference"
    )
    parser.add_argument("--output", default=str(HERE / "results.json"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark chowns the tree to nobody:nogroup")

    load_before = list(os.getloadavg())
    base = Path(tempfile.mkdtemp(prefix="artifact-bench-", dir=args.dir))
    base.chmod(0o755)  # a parent nobody can traverse: the module leaves it alone
    try:
        measured = measure(args, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    results = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "tree_dir": args.dir,
            # The machine is shared (other Molecule runs): its load while the benchmark ran.
            "loadavg_before": load_before,
            "loadavg_after": list(os.getloadavg()),
        },
        **measured,
    }
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print_table(measured, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
