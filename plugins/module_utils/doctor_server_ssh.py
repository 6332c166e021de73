"""The server side of SFTP: each account's keys, ~/.ssh/config, known_hosts and an SFTP login."""

from __future__ import annotations

import os
import re
import stat
from types import SimpleNamespace

from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_host import (
    Identity,
    lstat,
    owner_text,
    run,
    version_tuple,
)
from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_report import (
    TOOLKIT_KEYS_FIX,
    TOOLKIT_SERVER_FIX,
    TOOLKIT_STORE_FIX,
)
from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_ssh_keys import (
    SSH_DIR_SKIP,
    describe_key,
    expand_ssh_path,
    known_hosts_has,
    private_key_info,
    ssh_config_lookup,
)


class SshChecks:
    """Checks of the SSH material of the accounts that log in to the artifact host."""

    def accounts(self):
        """The accounts whose SSH material is checked: the server's user first, then key_accounts."""
        names = []
        for name in [self.proc_user] + list(self.p["key_accounts"]):
            if name and name not in names:
                names.append(name)
        return names

    def check_ssh(self):
        """Check the SSH material of every account for each artifact target (host, port, user)."""
        seen = set()
        for target in self.targets:
            key = (target["host"], target["port"], target["user"])
            if key in seen:
                continue
            seen.add(key)
            for account in self.accounts():
                self.check_account_ssh(account, target)

    def usable(self, info, consumer):
        """(ok, reason) whether CONSUMER (pysftp, plugin, openssh) can load key INFO."""
        if info["encrypted"]:
            return False, "it has a passphrase (a service cannot type it)"
        if consumer == "pysftp" and info["type"] not in ("rsa", "dsa"):
            return False, f"pysftp loads only RSA keys, this one is {info['type']}"
        if consumer == "pysftp" and info["type"] == "dsa" and version_tuple(self.py["paramiko"]) >= (4,):
            return False, "DSA keys need paramiko < 4"
        if consumer == "plugin" and info["type"] not in ("rsa", "ed25519", "ecdsa"):
            return False, f"{info['type']} keys are not supported by paramiko"
        return True, ""

    def check_account_ssh(self, account, target):
        """Check ACCOUNT's keys, ssh config, key in use, known_hosts and SFTP login for TARGET."""
        ctx = self._ssh_context(account, target)
        if ctx is None:
            return
        keys = self._account_keys(ctx)
        if keys is None:
            return
        configured = self._ssh_config_findings(ctx)
        kind = (
            self.store_kind()
            if account == self.proc_user
            else ("plugin" if self.store_kind() == "plugin" else "pysftp")
        )
        store_name = self._key_in_use(ctx, keys, configured, kind)
        self._known_hosts(ctx, kind, store_name)
        # SFTP login (pwd only)
        if self.p["sftp_login"] and ctx.required and os.path.isdir(ctx.sshdir):
            self.sftp_login(account, ctx.ident, target, ctx.tag)

    def _ssh_context(self, account, target):
        """What the checks of ACCOUNT for TARGET share; None (reported when it matters) without ACCOUNT."""
        ident = Identity(account)
        required = account in (self.proc_user, self.p["account"])
        tag = f"[{account}]"
        if not ident.exists:
            if required:
                self.r.error(
                    f"account{tag}",
                    f"account {account} does not exist",
                    "ansible-playbook playbooks/accounts.yml",
                )
            return None
        sshdir = os.path.join(ident.home, ".ssh")
        cfg_path = os.path.join(sshdir, "config")
        cfg = ssh_config_lookup(cfg_path, target["host"])
        return SimpleNamespace(
            account=account,
            target=target,
            ident=ident,
            required=required,
            role_text=(
                "runs the server"
                if account == self.proc_user
                else ("service account" if account == self.p["account"] else "optional")
            ),
            tag=tag,
            home=ident.home,
            sshdir=sshdir,
            host=target["host"],
            port=target["port"],
            cfg_path=cfg_path,
            cfg=cfg,
            hostname=(cfg or {}).get("hostname", target["host"]) if cfg else target["host"],
            level="error" if required else "warn",
        )

    def _account_keys(self, ctx):
        """The private keys in the account's ~/.ssh, reported; None when there is nothing more to check."""
        account, tag, home = ctx.account, ctx.tag, ctx.home
        keys = []
        try:
            for name in sorted(os.listdir(ctx.sshdir)):
                if name.endswith(".pub") or name in SSH_DIR_SKIP:
                    continue
                full = os.path.join(ctx.sshdir, name)
                if os.path.isfile(full):
                    info = private_key_info(full)
                    if info:
                        keys.append(info)
        except OSError:
            pass
        if not keys and not ctx.required:
            self.r.ok(
                f"keys{tag}",
                f"{account} ({ctx.role_text}) has no SSH key: not needed, the server runs as "
                f"{self.proc_user}",
            )
            return None
        if not keys:
            self.r.add(
                ctx.level,
                f"keys{tag}",
                f"{account} ({ctx.role_text}) has no SSH private key in {ctx.sshdir}",
                f"{TOOLKIT_KEYS_FIX} (or as {account}: ssh-keygen -t ed25519 -N '' -f "
                f"~/.ssh/id_mlflow_sftp, then authorize the .pub for {ctx.target['user']} on {ctx.host})",
            )
            return None
        self.r.ok(
            f"keys{tag}",
            f"{account} ({ctx.role_text}) has {len(keys)} key(s): "
            + ", ".join(describe_key(k, home) for k in keys),
        )
        for info in keys:
            st = lstat(info["path"])
            if st and (stat.S_IMODE(st.st_mode) & 0o077 or st.st_uid != ctx.ident.uid):
                self.r.add(
                    ctx.level,
                    f"keys{tag}",
                    f"{describe_key(info, home)} is {owner_text(st)}: OpenSSH refuses "
                    "a private key others can read or that the account does not own",
                    f"chown {account}: {info['path']} && chmod 0600 {info['path']}",
                )
            if info.get("pub_mismatch"):
                self.r.warn(
                    f"keys{tag}",
                    f"{info['path']}.pub does not belong to {info['path']}",
                    f"ssh-keygen -y -f {info['path']} > {info['path']}.pub",
                )
        return keys

    def _ssh_config_findings(self, ctx):
        """Report what ~/.ssh/config says for the host; return its IdentityFile paths, expanded."""
        cfg, cfg_path, tag = ctx.cfg, ctx.cfg_path, ctx.tag
        configured = [
            expand_ssh_path(v, ctx.home, ctx.account, ctx.hostname, ctx.target["user"])
            for v in (cfg or {}).get("identityfile", [])
        ]
        if cfg is None:
            cfg_text = f"no {cfg_path}"
        elif cfg["_entries"]:
            cfg_text = f"Host {cfg['_entries'][0]} in {cfg_path}"
        else:
            cfg_text = f"no Host entry for {ctx.host} in {cfg_path}"
        if cfg and cfg["_entries"]:
            self._host_entry_findings(ctx, cfg_text, configured)
        else:
            self.r.ok(
                f"ssh_config{tag}",
                f"{cfg_text}: the default key names are used "
                f"(the toolkit writes an entry with IdentityFile ~/.ssh/id_mlflow_sftp)",
            )
        if cfg and cfg["_unsupported"]:
            self.r.ok(
                f"ssh_config{tag}",
                f"{cfg_path} uses {', '.join(sorted(set(cfg['_unsupported'])))}, which "
                "this check does not follow",
            )
        return configured

    def _host_entry_findings(self, ctx, cfg_text, configured):
        """Report the Host entry of ~/.ssh/config for the artifact host (keys, User, Port)."""
        cfg, tag = ctx.cfg, ctx.tag
        details = [f"IdentityFile {', '.join(configured)}" if configured else "no IdentityFile"]
        for opt in ("hostname", "user", "port"):
            if opt in cfg:
                details.append(f"{opt.capitalize()} {cfg[opt]}")
        missing = [p for p in configured if not os.path.exists(p)]
        if missing:
            self.r.add(
                ctx.level,
                f"ssh_config{tag}",
                f"{cfg_text} names IdentityFile {', '.join(missing)}, which does not exist",
                f"fix the IdentityFile line or create the key ({TOOLKIT_KEYS_FIX})",
            )
        elif not configured:
            self.r.warn(
                f"ssh_config{tag}",
                f"{cfg_text} has no IdentityFile: the default key names are tried",
                f"add 'IdentityFile ~/.ssh/id_mlflow_sftp' under that Host ({TOOLKIT_KEYS_FIX})",
            )
        else:
            self.r.ok(f"ssh_config{tag}", f"{cfg_text}: " + "; ".join(details))
        if "user" in cfg and cfg["user"] != ctx.target["user"]:
            self.r.warn(
                f"ssh_config{tag}",
                f"{cfg_text} says User {cfg['user']} but the URI logs in as {ctx.target['user']}",
                "make them agree",
            )
        if "port" in cfg and str(cfg["port"]) != str(ctx.port):
            self.r.warn(
                f"ssh_config{tag}",
                f"{cfg_text} says Port {cfg['port']} but the URI uses {ctx.port}",
                "make them agree",
            )

    @staticmethod
    def _candidate_keys(ctx, configured, kind):
        """(key paths the store of KIND would try, in order, the store's name)."""
        sshdir = ctx.sshdir
        if kind == "pysftp":
            if configured:
                return [configured[0]], "MLflow's pysftp store"
            chosen = [
                p
                for p in (os.path.join(sshdir, "id_rsa"), os.path.join(sshdir, "id_dsa"))
                if os.path.exists(p)
            ][:1]
            return chosen, "MLflow's pysftp store"
        defaults = [os.path.join(sshdir, n) for n in ("id_ed25519", "id_ecdsa", "id_rsa")]
        ids_only = str((ctx.cfg or {}).get("identitiesonly", "no")).lower() == "yes"
        chosen = (configured or defaults) if ids_only else configured + defaults
        chosen = [p for p in chosen if os.path.exists(p)]
        return chosen, "the sftp plugin" if kind == "plugin" else "an SFTP client"

    def _key_in_use(self, ctx, keys, configured, kind):
        """Report the key the store of KIND logs in with (its public half is kept); return the store name."""
        account, host, home, tag, user = ctx.account, ctx.host, ctx.home, ctx.tag, ctx.target["user"]
        chosen, store_name = self._candidate_keys(ctx, configured, kind)
        by_path = {k["path"]: k for k in keys}
        consumer = "pysftp" if kind == "pysftp" else "plugin"
        usable, reasons = [], []
        for path in chosen:
            info = by_path.get(path) or private_key_info(path)
            if not info:
                reasons.append(f"{path} is not a private key")
                continue
            ok, why = self.usable(info, consumer)
            if ok:
                usable.append(info)
            else:
                reasons.append(f"{describe_key(info, home)}: {why}")
        if usable:
            first = usable[0]
            self.r.ok(
                f"key_in_use{tag}",
                f"{store_name} logs in to {user}@{host}:{ctx.port} with {describe_key(first, home)}",
            )
            if first.get("public"):
                self.discovered["public_keys"].append(
                    {
                        "account": account,
                        "host": host,
                        "type": first["type"],
                        "public": first["public"],
                        "path": first["path"],
                    }
                )
            return store_name
        if reasons:
            why = "; ".join(reasons)
        elif kind == "pysftp":
            why = "no IdentityFile for this host and no ~/.ssh/id_rsa"
        else:
            why = "no IdentityFile for this host and no default key"
        fix = (
            f"give {account} an RSA key (pysftp loads no other type) or install the toolkit's sftp plugin "
            f"({TOOLKIT_SERVER_FIX})"
            if kind == "pysftp"
            else TOOLKIT_KEYS_FIX
        )
        self.r.add(
            ctx.level, f"key_in_use{tag}", f"{store_name} has no usable key for {user}@{host}: {why}", fix
        )
        return store_name

    def _known_hosts(self, ctx, kind, store_name):
        """Report whether the account's known_hosts (or the global one) holds the artifact host's key."""
        account, port, hostname = ctx.account, ctx.port, ctx.hostname
        files = [os.path.join(ctx.sshdir, "known_hosts")]
        for extra in str((ctx.cfg or {}).get("userknownhostsfile", "")).split():
            path = expand_ssh_path(extra, ctx.home, account, hostname, ctx.target["user"])
            if path not in files:
                files.append(path)
        global_file = "/etc/ssh/ssh_known_hosts"
        bare, bracket = hostname, f"[{hostname}]:{port}"
        have_bare = [f for f in files if known_hosts_has(self.m, f, bare)]
        have_bracket = [f for f in files if port != 22 and known_hosts_has(self.m, f, bracket)]
        global_bare = known_hosts_has(self.m, global_file, bare)
        global_bracket = port != 22 and known_hosts_has(self.m, global_file, bracket)
        needs = []
        if kind == "pysftp" and not known_hosts_has(self.m, files[0], bare):
            needs.append(f"'{bare}' (pysftp looks up the bare name, in ~/.ssh/known_hosts only)")
        elif port == 22 and not (have_bare or global_bare):
            needs.append(f"'{bare}'")
        if port != 22 and not (have_bracket or global_bracket):
            needs.append(f"'{bracket}' (OpenSSH's form for port {port})")
        forms = ([f"'{bare}'"] if have_bare else []) + ([f"'{bracket}'"] if have_bracket else [])
        if global_bare or global_bracket:
            forms.append(global_file)
        if not needs:
            self.r.ok(f"known_hosts{ctx.tag}", f"host key of {hostname} listed as {', '.join(forms)}")
            return
        scan = f"ssh-keyscan -p {port} {hostname}"
        self.r.add(
            ctx.level,
            f"known_hosts{ctx.tag}",
            f"{files[0]} has no host key for {' nor '.join(needs)}: "
            f"{store_name} and sftp refuse the connection ('No hostkey for host {hostname} found' / "
            "'Host key verification failed')",
            f"{TOOLKIT_KEYS_FIX}, or as {account}: {scan}, compare the fingerprint with the artifact "
            f"host's (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub there), then append the line"
            + (f" for both '{bare}' and '{bracket}'" if port != 22 else "")
            + " to ~/.ssh/known_hosts",
        )

    def sftp_login(self, account, ident, target, tag):
        """Try an SFTP login as ACCOUNT to TARGET (runs `pwd` only) and explain a failure."""
        host, port, user = target["host"], target["port"], target["user"]
        argv = [
            "runuser",
            "-u",
            account,
            "--",
            "env",
            f"HOME={ident.home}",
            "sftp",
            "-b",
            "-",
            "-P",
            str(port),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "UpdateHostKeys=no",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
            f"{user}@{host}",
        ]
        if account == "root":
            argv = argv[argv.index("env") + 2 :]
        timeout = self.p["sftp_timeout"]
        rc, out, err = run(self.m, argv, data="pwd\n", timeout=timeout)
        where = f"{user}@{host}:{port}"
        if rc == 0 and "Remote working directory" in out:
            cwd = out.split("Remote working directory:", 1)[1].split("\n", 1)[0].strip()
            self.r.ok(f"sftp_login{tag}", f"{account} logs in to {where} over SFTP (remote directory {cwd})")
            return
        lines = [ln.strip() for ln in (err + "\n" + out).splitlines() if ln.strip()]
        telling = [
            ln
            for ln in lines
            if re.search(
                r"verification failed|Permission denied|Could not resolve|refused|timed out|No .*host key|"
                r"REMOTE HOST IDENTIFICATION|not found",
                ln,
            )
        ]
        last = (telling or lines or [f"exit {rc}"])[0]
        if "Host key verification failed" in err or "No ED25519 host key" in err or "host key" in err.lower():
            fix = f"add the artifact host's key to ~{account}/.ssh/known_hosts ({TOOLKIT_KEYS_FIX})"
            why = "host key not in known_hosts"
        elif "Permission denied" in err:
            fix = (
                f"authorize {account}'s public key for {user} on {host}, in the file its sshd reads "
                f"(/etc/ssh/authorized_keys/{user} where the toolkit confines {user}) ({TOOLKIT_KEYS_FIX}); "
                "check the doctor's findings for the artifact host (locked account, StrictModes)"
            )
            why = "the key is refused"
        elif "Could not resolve" in err:
            fix = f"make {host} resolvable (DNS, /etc/hosts) or use its IP address"
            why = "unknown host name"
        elif "Connection refused" in err or "timed out" in err or rc == 124:
            fix = f"start sshd on {host} and open port {port} ({TOOLKIT_STORE_FIX})"
            why = "no SSH server answers"
        else:
            fix = f"run as {account}: sftp -P {port} {where} and read the error"
            why = "login failed"
        self.r.error(f"sftp_login{tag}", f"{account} cannot log in to {where} over SFTP ({why}: {last})", fix)
