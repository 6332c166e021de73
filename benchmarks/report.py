#!/usr/bin/env python3
"""results.json -> results.md: the benchmark's targets (met / not met) and its tables as markdown.

run.py calls ``targets`` and ``markdown`` at the end of a run; standalone, this re-renders the
markdown of a stored results file:

    .venv/bin/python benchmarks/report.py [benchmarks/results/results.json] [--output results.md]

Standard library only, and nothing else of benchmarks/ imported: it can render results anywhere.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RESULTS_JSON = Path(__file__).resolve().parent / "results" / "results.json"

# Targets from issue #8.
TARGET_RERUN_S = 30.0
TARGET_BATCH_RATIO = 1.5
TARGET_RSS_RATIO = 0.5
TARGET_UPLOAD_RATIO = 0.7


def verdict(ok: bool | None) -> str:
    """A target's verdict cell: met, **not met**, or n/a when it could not be measured."""
    return "n/a" if ok is None else ("met" if ok else "**not met**")


def target_rerun(prov: dict) -> dict:
    """The idempotent re-run target, from the tuned configuration's re-run."""
    rerun = prov["tuned"]["rerun"]
    return {
        "target": f"idempotent re-run of the two-host site < {TARGET_RERUN_S:.0f} s (changed=0)",
        "measured": f"{rerun['wall_s']} s, changed={rerun['changed']}",
        "met": rerun["wall_s"] < TARGET_RERUN_S and rerun["changed"] == 0,
    }


def targets_tracking(trk: dict) -> list[dict]:
    """The log_batch throughput and RSS targets, provisioned server against the hand-run one."""
    batch = {p["server"]: p for p in trk["phases"] if p["op"] == "log_batch"}
    errors = sum(p["errors"] for p in trk["phases"] if p["server"] == "provisioned")
    if {"provisioned", "hand-run"} <= batch.keys():
        prov_rps, hand_rps = batch["provisioned"]["rps"], batch["hand-run"]["rps"]
        ratio = prov_rps / hand_rps if hand_rps > 0 else float("inf")
        measured = f"{ratio:.2f}x ({prov_rps} vs {hand_rps} req/s), {errors} errors"
        met = ratio >= TARGET_BATCH_RATIO and errors == 0
    else:
        measured, met = "not measured (a server could not be set up, see errors)", None
    servers = trk["servers"]
    rss = servers["provisioned"]["rss_max_mb"] / servers["hand-run"]["rss_max_mb"]
    return [
        {
            "target": f"provisioned log_batch >= {TARGET_BATCH_RATIO}x the hand-run server's, 0 errors",
            "measured": measured,
            "met": met,
        },
        {
            "target": f"provisioned server RSS < {TARGET_RSS_RATIO}x the hand-run server's",
            "measured": f"{rss:.2f}x ({servers['provisioned']['rss_max_mb']:.0f} vs "
            f"{servers['hand-run']['rss_max_mb']:.0f} MB)",
            "met": rss < TARGET_RSS_RATIO,
        },
    ]


def target_upload(art: dict) -> dict:
    """The proxied upload target, against OpenSSH sftp's whole command."""
    return {
        "target": f"proxied upload >= {TARGET_UPLOAD_RATIO}x OpenSSH sftp",
        "measured": f"{art['up_ratio']:.2f}x "
        f"(vs sftp without its connection set-up: {art['up_ratio_net']:.2f}x)",
        "met": art["up_ratio"] >= TARGET_UPLOAD_RATIO and art["checksums_ok"],
    }


def targets(res: dict) -> list[dict]:
    """Issue #8's targets that this run measured: target, measured, met (None: not measured)."""
    out = []
    if "tuned" in res.get("provisioning", {}):
        out.append(target_rerun(res["provisioning"]))
    if res.get("tracking", {}).get("phases"):
        out += targets_tracking(res["tracking"])
    if res.get("artifacts"):
        out.append(target_upload(res["artifacts"]))
    return out


def md_provisioning(prov: dict) -> list[str]:
    """The provisioning table, the baseline/tuned ratios, the slowest tasks and the task floor."""
    lines: list[str] = []
    lines += [
        "",
        "## Provisioning (`site.yml`, tracking server + artifact host, over SSH)",
        "",
        "| configuration | cold converge (s) | idempotent re-run (s) | re-run changed "
        "| load (1 min) cold / re-run |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    names = {
        "tuned": "project `ansible.cfg`: pipelining, ControlPersist 60s, jsonfile fact cache",
        "baseline": "baseline: no pipelining, no ControlPersist (`ssh_args` empty), memory fact cache",
        "stock": "Ansible's stock defaults: no pipelining, ControlPersist 60s, memory fact cache",
    }
    for key, label in names.items():
        if key not in prov:
            continue
        cold, rerun = prov[key].get("cold"), prov[key]["rerun"]
        cold_s = f"{cold['wall_s']}" if cold else "-"
        cold_l = f"{cold['load_before'][0]}" if cold else "-"
        lines.append(
            f"| {label} | {cold_s} | {rerun['wall_s']} | {rerun['changed']} | "
            f"{cold_l} / {rerun['load_before'][0]} |"
        )
    if "ratio" in prov:
        r = prov["ratio"]
        lines += ["", f"Baseline / tuned: cold converge {r['cold']}x, re-run {r['rerun']}x."]
    slow = prov.get("tuned", {}).get("rerun", {}).get("slowest_tasks")
    if slow:
        tasks = "; ".join(f"{t['task']} {t['s']:.1f} s" for t in slow[:5])
        lines += ["", f"Slowest tasks of the tuned re-run (profile_tasks): {tasks}."]
    floor = prov.get("tuned", {}).get("task_floor")
    if floor and "error" not in floor:
        per, mod = floor["per_task_s"], floor["module_on_host"]
        recap = prov["tuned"]["rerun"]["recap"]
        oks = ", ".join(f"{h} ok={r['ok']}" for h, r in recap.items())
        lines += [
            "",
            f"What one task costs with nothing to do, same hosts and settings ({floor['tasks']} of each, "
            f"both hosts, minus Ansible's start-up): a module task {per['module']} s, a controller-only "
            f"task {per['controller']} s, a skipped task {per['skipped']} s. One `stat` module run takes "
            f"{mod['cpu_s']} s of CPU on the host, {mod['compile_s']} s of it compiling module_utils from "
            f"the AnsiballZ zip. The tuned re-run ran {oks}.",
        ]
    elif floor:
        lines += ["", f"Task floor: not measured ({floor['error']})."]
    return lines


def md_tracking(trk: dict) -> list[str]:
    """The load phases' table, the servers' memory table and the notes on health, store and auth."""
    lines: list[str] = []
    lines += [
        "",
        f"## Tracking throughput ({trk['clients']} concurrent clients, REST from the controller)",
        "",
        "| server | operation | requests | req/s | p50 (ms) | p99 (ms) | errors | load (1 min) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for p in sorted(trk["phases"], key=lambda p: (p["op"], p["server"] != "provisioned")):
        op = p["op"] if p["op"] == "log_metric" else f"log_batch ({p['metrics_per_request']} metrics)"
        lines.append(
            f"| {p['server']} | {op} | {p['requests']} | {p['rps']} | {p['p50_ms']} | {p['p99_ms']} "
            f"| {p['errors']} | {p['load_before'][0]} |"
        )
    lines += [
        "",
        "| server | processes | RSS, sum over the process tree, max (MB) | PSS sum, max (MB) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, s in trk["servers"].items():
        lines.append(f"| {name} | {s['processes']} | {s['rss_max_mb']} | {s['pss_max_mb']} |")
    health = trk.get("hand_run_health_s")
    answered = f"{health} s after start" if health is not None else "never (240 s)"
    deaths = trk.get("hand_run_worker_deaths", "?")
    lines += [
        "",
        f"Hand-run server: `/health` answered {answered}; uvicorn killed {deaths} of its workers for "
        "missing the 5 s health ping (still importing MLflow on the loaded host) during the run.",
        "",
        "Tracking store, as each server's log shows: "
        + "; ".join(f"{n}: {s.get('store', '?')}" for n, s in trk.get("servers", {}).items())
        + ". Both run the same venv and uvicorn; the hand-run one with `MLFLOW_SQLITE_BULK_METRICS=false`.",
    ]
    if trk.get("auth_check"):
        a = trk["auth_check"]
        lines += [
            "",
            f"Basic-auth cost: one `check_password_hash` ({a['method']}) takes {a['cpu_s']} s of CPU "
            f"on this host; the provisioned server pays it once per client, worker and "
            f"`mlflow_auth_cache_ttl_seconds` (MLflow's auth cache; without it, on every request).",
        ]
    lines += [f"{name}: {s['error']}" for name, s in trk["servers"].items() if s.get("error")]
    return lines


def md_artifacts(art: dict) -> list[str]:
    """The artifact throughput table and the proxied / sftp ratios."""
    lines: list[str] = []
    lines += [
        "",
        f"## Artifact throughput ({art['size_mb']} MB, median of {len(art['rounds'])} rounds)",
        "",
        "| path | upload (MB/s) | download (MB/s) |",
        "| --- | ---: | ---: |",
        f"| MLflow client -> provisioned server (proxied) -> SFTP plugin -> artifact host "
        f"| {art['mlflow_up_mbps']} | {art['mlflow_down_mbps']} |",
        f"| OpenSSH `sftp -b` -> artifact host (whole command) | {art['sftp_up_mbps']} "
        f"| {art['sftp_down_mbps']} |",
        f"| OpenSSH `sftp -b`, connection set-up subtracted | {art['sftp_up_mbps_net']} "
        f"| {art['sftp_down_mbps_net']} |",
        "",
        f"Proxied / sftp: upload {art['up_ratio']}x ({art['up_ratio_net']}x without sftp's set-up), "
        f"download {art['down_ratio']}x. Checksums: {'ok' if art['checksums_ok'] else 'MISMATCH'}.",
    ]
    return lines


def md_permissions(perm: dict) -> list[str]:
    """The permission repair table (all-wrong and all-right trees) and where its numbers come from."""
    lines: list[str] = []
    tree = perm["tree"]
    lines += [
        "",
        f"## Artifact permission repair ({tree['files']:,} files, {tree['directories']:,} directories)",
        "",
        f"From `{perm['source']}` ({perm['date']}, load {perm['machine']['loadavg_before'][0]:.1f} before; "
        f"{'re-run now' if perm['rerun'] else 'stored results, not re-run'}). "
        f"Ansible start-up alone: {perm['ansible_overhead_s']} s.",
        "",
        "| method | tree state | wall time (s) | in module (s) | changed |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for r in perm["results"]:
        if r["state"] in ("all-wrong", "all-right"):
            lines.append(
                f"| {r['method']} | {r['state']} | {r['wall_s']} | {r.get('module_s', '-')} "
                f"| {str(r['changed']).lower()} |"
            )
    return lines


def run_cells(run: dict) -> str:
    """Wall time, changed and load of one site.yml run, or its failure, as table cells."""
    if "error" in run:
        first = " ".join((run.get("first_errors") or [run["error"]])[0].split()).replace("|", "/")
        return f"**failed** | - | - | {first[:160]} (`{run['log']}`) |"
    return f"{run['wall_s']} | {run['changed']} | {run['load_before'][0]} | |"


def median(values: list[float]) -> float | None:
    """The median of a few numbers (None for none)."""
    v = sorted(values)
    if not v:
        return None
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else round((v[mid - 1] + v[mid]) / 2, 1)


def md_strategy_runs(st: dict) -> list[str]:
    """The site.yml runs of the strategy section: cold, alternating re-runs, Mitogen cold."""
    mitogen = f"`ansible-mitogen.cfg` (Mitogen {st['mitogen']}, `mitogen_linear`)"
    lines = [
        "",
        "## Strategy: Mitogen and the MLflow install (issue #17)",
        "",
        "| `site.yml` run (2 hosts, SSH) | configuration | wall (s) | changed | load (1 min) | note |",
        "| --- | --- | ---: | ---: | ---: | --- |",
        f"| cold converge, fresh hosts | `ansible.cfg` (linear) | {run_cells(st['linear_cold'])}",
    ]
    rounds = max(len(v) for v in st["reruns"].values())
    for i in range(rounds):
        for name, label in (("linear", "`ansible.cfg` (linear)"), ("mitogen", mitogen)):
            if i < len(st["reruns"][name]):
                lines.append(f"| idempotent re-run {i + 1} | {label} | {run_cells(st['reruns'][name][i])}")
    if "mitogen_cold" in st:
        lines.append(f"| cold converge, second fresh hosts | {mitogen} | {run_cells(st['mitogen_cold'])}")
        if "second_attempt" in st["mitogen_cold"]:
            second = st["mitogen_cold"]["second_attempt"]
            lines.append(f"| the same again, same hosts | {mitogen} | {run_cells(second)}")
    for key, label, cfg in (
        ("mitogen_cold_rerun", "its idempotent re-run", mitogen),
        ("mitogen_cold_linear_rerun", "then a re-run", "`ansible.cfg` (linear)"),
    ):
        if key in st:
            lines.append(f"| {label} | {cfg} | {run_cells(st[key])}")
    med = {
        name: median([r["wall_s"] for r in runs if "error" not in r]) for name, runs in st["reruns"].items()
    }
    cold = st["linear_cold"]
    notes = [f"Re-run median: `ansible.cfg` {med['linear']} s, Mitogen {med['mitogen']} s"]
    if med["linear"] and med["mitogen"]:
        notes[0] += f" ({med['mitogen'] / med['linear']:.2f}x)"
    if cold.get("pip_task_s") is not None:
        notes.append(
            f"The MLflow install task (`mlflow : Install MLflow into its virtualenv`, profile_tasks) took "
            f"{cold['pip_task_s']} s of the cold converge's {cold['wall_s']} s ({cold['pip_share']:.0%})"
        )
        mc = st.get("mitogen_cold", {})
        mc = mc.get("second_attempt", mc)
        if mc.get("pip_task_s") is not None:
            notes[-1] += f"; under Mitogen {mc['pip_task_s']} s of {mc['wall_s']} s"
    return [*lines, "", ". ".join(notes) + "."]


def md_strategy(st: dict) -> list[str]:
    """The strategy section: its site.yml runs, then pip against uv."""
    lines = md_strategy_runs(st)
    inst = st.get("install", {})
    if "error" in inst and "rows" not in inst:
        return [*lines, "", f"pip against uv: not measured ({inst['error']})."]
    if inst:
        lines += [
            "",
            f"pip against uv on `{inst['host']}`: a fresh venv and `{inst['requirement']}` (the role's "
            "requirement with the sandbox's settings), one after the other; `/wheelhouse` and the CA bundle "
            "mounted as on every bench host (pip: `/etc/pip.conf`; uv: `--find-links /wheelhouse`, "
            "`SSL_CERT_FILE`).",
            "",
            "| tool | source | bytecode compiled | uv cache | venv (s) | install (s) | total (s) "
            "| packages | size (MB) |",
            "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in inst["rows"]:
            if "error" in r:
                error = " ".join(r["error"].split())[:160].replace("|", "/")
                source = "wheelhouse only (--no-index)" if r["no_index"] else "wheelhouse + index"
                lines.append(f"| {r['tool']} | {source} | **failed**: {error} | | | | | | |")
                continue
            pyc = "yes" if r["compile_bytecode"] else "no"
            tool = " ".join(r["version"].split()[:2])  # "uv 0.13.9", "pip 23.0.1"
            lines.append(
                f"| {tool} | {r['source']} | {pyc} | {r['uv_cache']} | {r['venv_s']} | "
                f"{r['install_s']} | {r['total_s']} | {r['packages']} | {r['size_mb']} |"
            )
        if inst.get("note"):
            lines += ["", f"Note: {inst['note']}"]
    return lines


def markdown(res: dict) -> str:
    """The whole results.md of a results dict (with its ``targets`` computed already)."""
    m = res["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"{res['date']}, `{res['command']}`. Machine: {m['cpus']} CPUs, {m['mem_gb']} GiB, "
        f"kernel {m['kernel']}, "
        f"Python {m['python']}, {m['ansible']}; load average (1/5/15 min) {m['load_before']} before, "
        f"{m['load_after']} after (shared machine: absolute numbers are pessimistic). "
        f"Total {res['total_s']:.0f} s.",
        "",
        "## Targets",
        "",
        "| target | measured | verdict |",
        "| --- | --- | --- |",
        *(f"| {t['target']} | {t['measured']} | {verdict(t['met'])} |" for t in res["targets"]),
    ]
    if res.get("provisioning"):
        lines += md_provisioning(res["provisioning"])
    if res.get("tracking", {}).get("phases"):
        lines += md_tracking(res["tracking"])
    if res.get("artifacts"):
        lines += md_artifacts(res["artifacts"])
    if res.get("permissions"):
        lines += md_permissions(res["permissions"])
    if res.get("strategy"):
        lines += md_strategy(res["strategy"])
    if res.get("errors"):
        lines += ["", "## Errors", "", *(f"- {e}" for e in res["errors"])]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Render a results.json to markdown, next to it (results.md) unless --output says otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default=str(RESULTS_JSON), help="a results.json of run.py")
    parser.add_argument("--output", help="the markdown file (default: the input's .md; - for stdout)")
    args = parser.parse_args()
    source = Path(args.results)
    md = markdown(json.loads(source.read_text()))
    if args.output == "-":
        sys.stdout.write(md)
        return 0
    out = Path(args.output) if args.output else source.with_suffix(".md")
    out.write_text(md)
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
