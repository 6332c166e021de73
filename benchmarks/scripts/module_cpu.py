"""Runs on the bench server (``python3 -`` on stdin): the CPU cost of one ``stat`` module run.

It runs the newest kept AnsiballZ_stat.py (``ANSIBLE_KEEP_REMOTE_FILES``) three times for its CPU
seconds (median), then once under cProfile for the share spent in ``compile()``: Python compiling the
module_utils sources in the AnsiballZ zip (zipimport has no bytecode cache). Prints one JSON line.
Standard library only: it runs with the host's own python3.
"""

from __future__ import annotations

import contextlib
import cProfile
import glob
import io
import json
import pstats
import resource
import runpy
import subprocess
import sys

KEPT = "/root/.ansible/tmp/ansible-tmp-*/AnsiballZ_stat.py"


def cpu_seconds(module: str) -> float:
    """CPU time (user + system) of one run of the module in a child Python."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, module], stdout=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def compile_seconds(module: str) -> float:
    """Seconds spent in builtins.compile during one profiled in-process run of the module."""
    prof = cProfile.Profile()
    sys.argv = [module]
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            prof.runcall(runpy.run_path, module, run_name="__main__")
        except SystemExit:
            pass
    stats = pstats.Stats(prof).stats
    return sum(v[3] for k, v in stats.items() if k[2] == "<built-in method builtins.compile>")


def main() -> int:
    """Print the median CPU seconds of three runs and the compile share of one."""
    module = sorted(glob.glob(KEPT))[-1]
    runs = [cpu_seconds(module) for _ in range(3)]
    compile_s = compile_seconds(module)
    print(json.dumps({"cpu_s": round(sorted(runs)[1], 3), "compile_s": round(compile_s, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
