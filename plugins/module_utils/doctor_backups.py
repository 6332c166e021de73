"""The database backups: the newest file, its age, the backup timer and its last run."""

from __future__ import annotations

import errno
import os
import time

from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_host import disk_check, human_age, run


def is_backup(name):
    """Whether a file NAME counts as a good backup: not a partial file (a run that failed or is
    still going), a lock, a journal or another hidden file."""
    return not (name.startswith(".") or name.endswith((".partial", ".lock", "-journal", "-wal", "-shm")))


def scan_backups(backup_dir):
    """(newest (mtime, path) or None, number of files, OSError or None) of the backups in BACKUP_DIR.

    Two levels of subdirectories are looked into; symlinks are not followed; only files that
    count as a good backup (is_backup) are. The scan stops at the first directory that cannot be
    read and returns what it found so far with the error.
    """
    newest, count = None, 0
    try:
        stack = [(backup_dir, 0)]
        while stack:
            directory, depth = stack.pop()
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False) and depth < 2:
                        stack.append((entry.path, depth + 1))
                    elif entry.is_file(follow_symlinks=False) and is_backup(entry.name):
                        count += 1
                        mtime = entry.stat(follow_symlinks=False).st_mtime
                        if newest is None or mtime > newest[0]:
                            newest = (mtime, entry.path)
    except OSError as exc:
        return newest, count, exc
    return newest, count, None


class BackupChecks:
    """Checks of the database backups (reads self.p and runs systemctl through self.m)."""

    def check_backups(self, db_path):
        """Report the newest backup of DB_PATH and its age, the backup timer and the free space."""
        backup_dir = self.p["backup_dir"] or os.path.join(os.path.dirname(db_path), "backups")
        newest, count, error = scan_backups(backup_dir)
        if error is not None and error.errno != errno.ENOENT:
            self.r.warn("backup", f"cannot read {backup_dir}: {error}", "check its permissions")
            return
        fix = (
            f'back up now (sqlite3 {db_path} ".backup {backup_dir}/mlflow-$(date +%F).db", or Python\'s '
            "sqlite3 .backup()) and schedule it daily (the toolkit's mlflow role does)"
        )
        timer = self.p["backup_timer"]
        tprops, timer_active = self._backup_timer(timer)
        if newest is None:
            if timer_active and tprops.get("LastTriggerUSec", "") in ("", "n/a", "0"):
                self.r.ok(
                    "backup",
                    f"no backup in {backup_dir} yet: {timer} is active and has not run yet "
                    f"(next run {tprops.get('NextElapseUSecRealtime') or '?'})",
                )
            else:
                self.r.warn(
                    "backup",
                    f"no backup of {db_path} in {backup_dir}"
                    + (f" although {timer} ran ({tprops.get('LastTriggerUSec')})" if timer_active else ""),
                    fix,
                )
            return
        age = time.time() - newest[0]
        limit = self.p["backup_max_age_days"] * 86400
        text = f"newest good backup of {count} is {newest[1]}, {human_age(age)} old"
        if timer_active:
            text += f" ({timer} active)"
        if age > limit:
            self.r.warn("backup", text + f" (older than {self.p['backup_max_age_days']:g} days)", fix)
        else:
            self.r.ok("backup", text)
        if os.stat(backup_dir).st_dev != os.stat(os.path.dirname(db_path)).st_dev:
            disk_check(self.r, "disk_backup", backup_dir, self.p["min_free_percent"], self.p["min_free_gib"])

    def _backup_timer(self, timer):
        """(systemctl properties of TIMER, whether it is active); a failed last backup run is reported."""
        tprops = {}
        if timer:
            rc, out, _err = run(
                self.m,
                [
                    "systemctl",
                    "show",
                    timer,
                    "--no-pager",
                    "--property=LoadState,ActiveState,LastTriggerUSec,NextElapseUSecRealtime,Unit",
                ],
            )
            if rc == 0:
                tprops = dict(line.partition("=")[::2] for line in out.splitlines())
        timer_active = tprops.get("LoadState") == "loaded" and tprops.get("ActiveState") == "active"
        if timer_active:
            service = tprops.get("Unit") or timer.replace(".timer", ".service")
            rc, out, _err = run(
                self.m, ["systemctl", "show", service, "--no-pager", "--property=Result,ActiveState"]
            )
            sprops = dict(line.partition("=")[::2] for line in out.splitlines()) if rc == 0 else {}
            if sprops.get("Result") not in (None, "", "success"):
                self.r.warn(
                    "backup",
                    f"the last run of {service} failed ({sprops.get('Result')})",
                    f"journalctl -u {service} -n 50; systemctl start {service}",
                )
        return tprops, timer_active
