#!/usr/bin/env python3
"""Benchmark: repair of artifact tree permissions on 100,000 files (role artifact_store).

Builds a tree shaped like MLflow's (EXPERIMENTS x RUNS run directories, FILES files each; by
default 10 x 100 x 100 = 100,000 files in 1,011 directories) in a temporary directory on this
machine, then times the role's module `artifact_store_tree` run through Ansible (the real thing:
`ansible localhost -m artifact_store_tree -M roles/artifact_store/library`) on:

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
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LIBRARY = REPO / "roles" / "artifact_store" / "library"
OWNER, GROUP = "nobody", "nogroup"


def sh(*cmd: str, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result


def build(root: Path, experiments: int, runs: int, files: int) -> tuple[int, int]:
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
    sh("chown", "-R", "root:root", str(root))
    sh("find", str(root), "-type", "d", "-exec", "chmod", "0700", "{}", "+")
    sh("find", str(root), "-type", "f", "-exec", "chmod", "0600", "{}", "+")


def make_one_percent_wrong(root: Path) -> int:
    wrong = 0
    for run in sorted(p for e in root.iterdir() for p in e.iterdir()):
        os.chmod(run / "artifact-0.bin", 0o644)
        wrong += 1
    return wrong


def ansible_env() -> dict:
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
    out = sh("ansible", "localhost", "-i", "localhost,", "-c", "local", *args, env=ansible_env()).stdout
    # raw_decode: ansible.cfg's timer callback prints a line after the JSON document.
    return json.JSONDecoder().raw_decode(out.lstrip())[0]["plays"][0]["tasks"][0]["hosts"]["localhost"]


def run_module(root: Path) -> tuple[float, dict]:
    start = time.perf_counter()
    result = adhoc(
        "-M", str(LIBRARY), "-m", "artifact_store_tree",
        "-a", f"path={root} owner={OWNER} group={GROUP} dir_mode=2750 file_mode=0640",
    )
    return time.perf_counter() - start, result


def run_find(root: Path) -> tuple[float, bool]:
    """The command-based alternative: a read-only detection pass, then fixes of wrong entries."""
    wrong = [
        "(", "!", "-user", OWNER, "-o", "!", "-group", GROUP,
        "-o", "-type", "d", "!", "-perm", "2750", "-o", "-type", "f", "!", "-perm", "0640", ")",
    ]
    start = time.perf_counter()
    found = sh("find", str(root), "-not", "-type", "l", *wrong, "-print", "-quit").stdout.strip()
    if found:
        sh("find", str(root), "-not", "-type", "l", "(", "!", "-user", OWNER, "-o", "!", "-group", GROUP, ")",
           "-exec", "chown", "-h", f"{OWNER}:{GROUP}", "{}", "+")
        sh("find", str(root), "-type", "d", "!", "-perm", "2750", "-exec", "chmod", "2750", "{}", "+")
        sh("find", str(root), "-type", "f", "!", "-perm", "0640", "-exec", "chmod", "0640", "{}", "+")
    return time.perf_counter() - start, bool(found)


def run_file_module(root: Path) -> tuple[float, bool]:
    start = time.perf_counter()
    result = adhoc(
        "-m", "ansible.builtin.file",
        "-a", f"path={root} state=directory recurse=true owner={OWNER} group={GROUP} mode=u=rwX,g=rX,o=",
    )
    return time.perf_counter() - start, result.get("changed", False)


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=10)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default="/var/tmp", help="where the temporary tree is built")
    parser.add_argument("--no-file-module", action="store_true", help="skip the ansible.builtin.file reference")
    parser.add_argument("--output", default=str(HERE / "results.json"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark chowns the tree to nobody:nogroup")

    load_before = list(os.getloadavg())
    base = Path(tempfile.mkdtemp(prefix="artifact-bench-", dir=args.dir))
    base.chmod(0o755)  # a parent nobody can traverse: the module leaves it alone
    root = base / "mlruns"
    rows: list[dict] = []
    try:
        t0 = time.perf_counter()
        dirs, files = build(root, args.experiments, args.runs, args.files)
        build_s = round(time.perf_counter() - t0, 1)
        print(f"built {files} files in {dirs} directories under {root} in {build_s} s", file=sys.stderr)

        def case(name: str, state: str, prepare, runner, expect_changed: bool) -> None:
            walls, inner, result = [], [], {}
            for _ in range(args.repeat):
                prepare()
                wall, result = runner(root)
                if isinstance(result, dict):
                    changed = result["changed"]
                    inner.append(result["elapsed"])
                else:
                    changed = result
                assert changed == expect_changed, (name, state, result)
                walls.append(wall)
            row = {"method": name, "state": state, "wall_s": median(walls), "runs": len(walls), "changed": changed}
            if inner:
                row["module_s"] = median(inner)
                row["dirs_fixed"] = result["dirs_fixed"]
                row["files_fixed"] = result["files_fixed"]
                row["dirs_seen"] = result["dirs"]
                row["files_seen"] = result["files"]
            rows.append(row)
            print(f"{name:28} {state:12} {row['wall_s']:8.2f} s", file=sys.stderr)

        def all_wrong() -> None:
            make_all_wrong(root)

        def one_percent() -> None:
            make_one_percent_wrong(root)

        def nothing() -> None:
            pass

        def to_right() -> None:  # leave the tree right for the next no-op case
            run_module(root)

        case("artifact_store_tree module", "all-wrong", all_wrong, run_module, True)
        case("artifact_store_tree module", "one-percent", one_percent, run_module, True)
        case("artifact_store_tree module", "all-right", nothing, run_module, False)
        case("find -exec (detect + fix)", "all-wrong", all_wrong, run_find, True)
        case("find -exec (detect + fix)", "one-percent", one_percent, run_find, True)
        case("find -exec (detect + fix)", "all-right", nothing, run_find, False)
        if not args.no_file_module:
            saved = args.repeat
            args.repeat = 1  # minutes per pass: once is enough for a reference
            case("ansible.builtin.file recurse", "all-wrong", all_wrong, run_file_module, True)
            case("ansible.builtin.file recurse", "all-right", nothing, run_file_module, False)
            args.repeat = saved
        to_right()
        # Ansible's own start-up, for reading the module's wall times: the module on an empty root.
        empty = base / "empty"
        empty.mkdir()
        sh("chown", f"{OWNER}:{GROUP}", str(empty))
        empty.chmod(0o2750)
        overhead = median([run_module(empty)[0] for _ in range(args.repeat)])
    finally:
        shutil.rmtree(base, ignore_errors=True)

    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "tree_dir": args.dir,
            # The machine is shared (other Molecule runs): its load while the benchmark ran.
            "loadavg_before": load_before,
            "loadavg_after": list(os.getloadavg()),
        },
        "tree": {"directories": dirs, "files": files, "build_s": build_s},
        "ansible_overhead_s": overhead,
        "results": rows,
    }
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")

    print(f"Tree: {files:,} files in {dirs:,} directories; Ansible start-up (module on an empty root): "
          f"{overhead:.2f} s; median of {args.repeat} runs unless noted.\n")
    print("| method | tree state | wall time (s) | in module (s) | fixed dirs / files | changed |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for row in rows:
        fixed = f"{row['dirs_fixed']:,} / {row['files_fixed']:,}" if "dirs_fixed" in row else "-"
        module_s = f"{row['module_s']:.2f}" if "module_s" in row else "-"
        note = "" if row["runs"] > 1 else " (1 run)"
        print(f"| {row['method']}{note} | {row['state']} | {row['wall_s']:.2f} | {module_s} | {fixed} | "
              f"{str(row['changed']).lower()} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
