"""Which MLflow server runs and with what configuration: its process (else its systemd unit)."""

from __future__ import annotations

import os
import re
import shlex

from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_host import (
    Identity,
    read_text,
    redact_uri,
    run,
    truthy,
    user_name,
)
from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_python import (
    inspect_python,
    python_site_dirs,
)
from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_report import TOOLKIT_SERVER_FIX
from ansible_collections.mlops.mlflow.plugins.module_utils.mlflow_processes import (
    is_server_worker,
    iter_processes,
    parse_server_args,
    process_cwd,
    process_env,
    process_ppid,
    process_uid,
    server_args_index,
)

SERVER_ENV = {
    "MLFLOW_BACKEND_STORE_URI": "backend",
    "MLFLOW_DEFAULT_ARTIFACT_ROOT": "artifact_root",
    "MLFLOW_ARTIFACTS_DESTINATION": "destination",
    "MLFLOW_HOST": "host",
    "MLFLOW_PORT": "port",
    "MLFLOW_SERVE_ARTIFACTS": "serve",
}
WORKER_ENV = {
    "_MLFLOW_SERVER_FILE_STORE": "backend",
    "_MLFLOW_SERVER_ARTIFACT_ROOT": "artifact_root",
    "_MLFLOW_SERVER_ARTIFACT_DESTINATION": "destination",
    "_MLFLOW_SERVER_SERVE_ARTIFACTS": "serve",
}


def unit_properties(module, unit):
    """The properties of UNIT the doctor uses (systemctl show); None without systemctl."""
    rc, out, _err = run(
        module,
        [
            "systemctl",
            "show",
            unit,
            "--no-pager",
            "--property=LoadState,ActiveState,SubState,UnitFileState,User,"
            "WorkingDirectory,ExecStart,EnvironmentFiles,Environment,MainPID,FragmentPath",
        ],
    )
    if rc != 0:
        return None
    props = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        props[key] = value
    return props


def env_file_values(path):
    """Variables of an EnvironmentFile= file (comments, export and quotes handled as systemd does)."""
    values = {}
    text = read_text(path) or ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        line = line.removeprefix("export ")
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def unit_config(props):
    """Server configuration from the unit: ExecStart argv with ${VAR} from Environment(File)."""
    env = {}
    for item in shlex.split(props.get("Environment", "") or ""):
        key, sep, value = item.partition("=")
        if sep:
            env[key] = value
    for item in re.findall(r"(\S+) \(ignore_errors=\w+\)", props.get("EnvironmentFiles", "") or ""):
        env.update(env_file_values(item))
    match = re.search(r"argv\[\]=(.*?) ;", props.get("ExecStart", "") or "")
    argv = shlex.split(match.group(1)) if match else []

    def expand(token):
        """TOKEN with ${VAR} and $VAR replaced from the unit's environment."""
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), token)

    expanded = []
    for token in argv:
        whole = re.fullmatch(r"\$(\w+)", token)
        if whole:  # systemd splits an unbraced $VAR into words
            expanded.extend(env.get(whole.group(1), "").split())
        else:
            expanded.append(expand(token))
    return expanded, env


def with_defaults(conf):
    """CONF completed with what `mlflow server` assumes when an option is not given."""
    conf.setdefault("host", "127.0.0.1")
    conf.setdefault("port", "5000")
    conf.setdefault("backend", "sqlite:///mlflow.db")
    conf["serve"] = truthy(conf["serve"]) if "serve" in conf else True
    if not conf.get("artifact_root"):
        conf["artifact_root"] = "mlflow-artifacts:/" if conf["serve"] else "./mlruns"
    conf.setdefault("destination", "./mlartifacts")
    return conf


class ProcessChecks:
    """Discovery of the server (process, else unit) and the process checks."""

    def discover(self):
        """Find the server and the configuration it runs with: from its process, else from the unit.

        Sets self.mains, self.workers, self.props, self.main_pid, self.argv, self.cwd, self.env,
        self.conf, self.proc_user, self.prefix, self.site_dirs and self.py for the checks.
        """
        mains, workers = [], []
        for pid, argv in iter_processes():
            if pid == os.getpid():
                continue
            idx = server_args_index(argv)
            if idx is not None:
                mains.append((pid, argv, idx))
            elif is_server_worker(argv):
                workers.append((pid, argv))
        self.mains, self.workers = mains, workers
        self.props = unit_properties(self.m, self.p["unit"])
        unit_loaded = bool(self.props) and self.props.get("LoadState") == "loaded"
        self.main_pid, self.cwd, self.argv = None, None, []
        conf, env = {}, {}
        if mains:
            conf, env = self._conf_from_main(mains[0], workers)
        elif workers:
            conf = self._conf_from_worker(workers[0])
        elif unit_loaded:
            conf, env = self._conf_from_unit()
        self.env = env
        self.conf = with_defaults(conf)
        if self.main_pid:
            self.proc_user = user_name(process_uid(self.main_pid))
        elif unit_loaded:
            self.proc_user = self.props.get("User") or "root"
        else:
            self.proc_user = None
        conf = self.conf
        self.discovered.update(
            pids=[m[0] for m in mains] + [w[0] for w in workers],
            user=self.proc_user,
            cwd=self.cwd,
            backend_uri=redact_uri(conf["backend"]),
            default_artifact_root=redact_uri(conf["artifact_root"]),
            artifacts_destination=redact_uri(conf["destination"]) if conf["serve"] else None,
            port=conf["port"],
            host=conf["host"],
        )
        self.prefix, self.site_dirs = python_site_dirs(self.m, self.argv)
        self.py = inspect_python(self.site_dirs)
        self.discovered["python"] = dict(
            prefix=self.prefix, **{k: v for k, v in self.py.items() if k != "migrations"}
        )

    def _conf_from_main(self, main, workers):
        """(configuration, environment) of the `mlflow server` process MAIN, completed from its workers."""
        pid, argv, idx = main
        self.main_pid, self.argv = pid, argv
        env = process_env(
            pid, set(SERVER_ENV) | {"HOME", "MLFLOW_SFTP_IDENTITY_FILES", "MLFLOW_SFTP_KNOWN_HOSTS"}
        )
        conf = {name: env[key] for key, name in SERVER_ENV.items() if key in env}
        conf.update(parse_server_args(argv[idx:]))
        self.cwd = process_cwd(pid)
        self.discovered["source"] = "process"
        # Workers carry the values MLflow resolved (defaults included).
        children = [w for w in workers if process_ppid(w[0]) == pid] or workers
        if children:
            wenv = process_env(children[0][0], set(WORKER_ENV))
            for key, name in WORKER_ENV.items():
                if key in wenv and name not in conf:
                    conf[name] = wenv[key]
        return conf, env

    def _conf_from_worker(self, worker):
        """Configuration of a server whose `mlflow server` parent is gone, from its worker WORKER."""
        pid, argv = worker
        self.main_pid, self.argv = pid, argv
        wenv = process_env(pid, set(WORKER_ENV))
        conf = {name: wenv[key] for key, name in WORKER_ENV.items() if key in wenv}
        conf.update({k: v for k, v in parse_server_args(argv).items() if k in ("host", "port")})
        self.cwd = process_cwd(pid)
        self.discovered["source"] = "process"
        return conf

    def _conf_from_unit(self):
        """(configuration, environment) the unit would start the server with (no server runs)."""
        argv, env = unit_config(self.props)
        idx = server_args_index(argv)
        self.argv = argv
        conf = {name: env[key] for key, name in SERVER_ENV.items() if key in env}
        if idx is not None:
            conf.update(parse_server_args(argv[idx:]))
        self.cwd = (self.props.get("WorkingDirectory") or "/").lstrip("!-")
        if self.cwd == "~":
            self.cwd = Identity(self.props.get("User") or "root").home
        self.discovered["source"] = "unit"
        return conf, env

    def check_process(self):
        """Check that one `mlflow server` runs, and as which user."""
        mains, workers = self.mains, self.workers
        if not mains and not workers:
            if self.props and self.props.get("LoadState") == "loaded":
                self.r.error(
                    "process",
                    f"no MLflow server process runs ({self.p['unit']} is "
                    f"{self.props.get('ActiveState')}/{self.props.get('SubState')})",
                    f"systemctl start {self.p['unit']}; journalctl -u {self.p['unit']} -n 50 for the reason",
                )
            else:
                self.r.error(
                    "process",
                    f"no MLflow server process runs and there is no {self.p['unit']}",
                    TOOLKIT_SERVER_FIX,
                )
            return
        if not mains:
            self.r.warn(
                "process",
                f"MLflow worker processes run (pids {[w[0] for w in workers][:5]}) but no "
                "`mlflow server` parent: its arguments could not be read",
                f"restart the server cleanly (systemctl restart {self.p['unit']})",
            )
        else:
            extra = f" ({len(mains)} separate `mlflow server` commands run)" if len(mains) > 1 else ""
            self.r.ok(
                "process",
                f"`mlflow server` runs as pid {mains[0][0]} with {len(workers)} worker process(es){extra}",
            )
            if len(mains) > 1:
                self.r.warn(
                    "process",
                    f"{len(mains)} `mlflow server` commands run (pids "
                    f"{[m[0] for m in mains]}); only pid {mains[0][0]} is diagnosed",
                    f"stop the hand-started copies (kill PID) and keep the one from {self.p['unit']}",
                )
        users = sorted({user_name(process_uid(pid)) for pid in self.discovered["pids"]})
        if "root" in users:
            self.r.error(
                "process_user",
                f"MLflow runs as root (pids {self.discovered['pids'][:6]}): the database "
                "and local artifacts it writes are root-owned, it uses root's ~/.ssh for SFTP, and a "
                "bug in MLflow is a bug with root's rights",
                f"run it as {self.p['account']} from a systemd unit (User={self.p['account']}); "
                f"chown {self.p['account']}: the database first; {TOOLKIT_SERVER_FIX}",
            )
        elif users and users != [self.p["account"]]:
            self.r.warn(
                "process_user",
                f"MLflow runs as {', '.join(users)}, not as {self.p['account']}",
                f"run it as {self.p['account']} (User= in {self.p['unit']})",
            )
        elif users:
            self.r.ok("process_user", f"MLflow runs as {users[0]}")
