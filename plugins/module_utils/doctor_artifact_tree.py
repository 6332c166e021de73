"""The artifact tree on the artifact host: owners, group, modes and access, in one walk."""

from __future__ import annotations

import grp
import os
import stat
import time

from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_host import (
    ancestors,
    disk_check,
    lstat,
    owner_text,
    user_name,
)
from ansible_collections.mlops.mlflow.plugins.module_utils.doctor_report import TOOLKIT_STORE_FIX


class TreeTally:
    """What one walk of the artifact tree found: counts per kind of entry and per problem, with examples."""

    def __init__(self, ident, gid, dir_mode, file_mode, limit):
        """A tally against the account IDENT, the group GID (None: not checked) and the expected modes."""
        self.ident, self.gid, self.dir_mode, self.file_mode, self.limit = (
            ident,
            gid,
            dir_mode,
            file_mode,
            limit,
        )
        self.stats = {"dirs": 0, "files": 0, "links": 0, "other": 0}
        self.counts = {"owner": 0, "group": 0, "dmode": 0, "fmode": 0, "unreadable": 0, "unwritable": 0}
        self.examples = {kind: [] for kind in self.counts}
        self.owners = {}
        self.walk_errors = []
        self.seconds = 0.0

    def note(self, kind, path, est):
        """Count a problem of KIND at PATH; keep it as an example while there are fewer than the limit."""
        self.counts[kind] += 1
        if len(self.examples[kind]) < self.limit:
            self.examples[kind].append(f"{path} ({owner_text(est)})")

    def check(self, path, est, is_dir):
        """Check the owner, group, mode and the account's access of one entry (EST is its lstat)."""
        ident = self.ident
        if ident.exists and est.st_uid != ident.uid:
            self.note("owner", path, est)
            self.owners[user_name(est.st_uid)] = self.owners.get(user_name(est.st_uid), 0) + 1
        if self.gid is not None and est.st_gid != self.gid:
            self.note("group", path, est)
        mode = stat.S_IMODE(est.st_mode)
        if is_dir:
            if mode != self.dir_mode:
                self.note("dmode", path, est)
            if ident.exists and not ident.can(est, 7):
                self.note("unwritable", path, est)
        else:
            if mode != self.file_mode:
                self.note("fmode", path, est)
            if ident.exists and not ident.can(est, 4):
                self.note("unreadable", path, est)

    def walk(self, root, root_st):
        """Walk the tree below ROOT once (symlinks counted, never followed) and check every entry."""
        start = time.monotonic()
        self.check(root, root_st, True)
        stack = [root]
        while stack:
            directory = stack.pop()
            try:
                with os.scandir(directory) as entries:
                    for entry in entries:
                        self._visit(entry, stack)
            except OSError as exc:
                self.walk_errors.append(f"{directory}: {exc.strerror}")
        self.seconds = time.monotonic() - start

    def _visit(self, entry, stack):
        """Count and check one directory entry; a directory is pushed on STACK to be walked."""
        try:
            est = entry.stat(follow_symlinks=False)
        except OSError:
            return
        if stat.S_ISLNK(est.st_mode):
            self.stats["links"] += 1
        elif stat.S_ISDIR(est.st_mode):
            self.stats["dirs"] += 1
            self.check(entry.path, est, True)
            stack.append(entry.path)
        elif stat.S_ISREG(est.st_mode):
            self.stats["files"] += 1
            self.check(entry.path, est, False)
        else:
            self.stats["other"] += 1


class TreeChecks:
    """The walk of the artifact tree and its findings (reads self.root, self.ident, self.p)."""

    def tree(self):
        """Check the artifact root, its parents and every entry below it, then the free space."""
        root, name = self.root, self.p["account"]
        st = lstat(root)
        if st is None:
            self.r.error(
                "artifact_root",
                f"artifact root {root} does not exist: uploads fail (or create a tree with the wrong owner)",
                f"{TOOLKIT_STORE_FIX} (creates it, owned by {name})",
            )
            return
        if not stat.S_ISDIR(st.st_mode):
            self.r.error(
                "artifact_root", f"artifact root {root} is not a directory", "point the URI at a directory"
            )
            return
        if self.ident.exists:
            self._parents_traversable()
        try:
            gid = grp.getgrnam(self.p["group"]).gr_gid
        except KeyError:
            gid = None
            self.r.warn(
                "artifact_group", f"group {self.p['group']} does not exist", "create it or set doctor_group"
            )
        tally = TreeTally(
            self.ident, gid, int(self.p["dir_mode"], 8), int(self.p["file_mode"], 8), self.p["max_examples"]
        )
        tally.walk(root, st)
        self.discovered["tree"] = dict(tally.stats, seconds=round(tally.seconds, 2))
        self.r.ok(
            "artifact_root",
            f"{root} ({owner_text(st)}): {tally.stats['dirs']} directories, {tally.stats['files']} files, "
            f"{tally.stats['links']} symlinks, walked in {tally.seconds:.2f} s",
        )
        self._tree_findings(tally)
        disk_check(self.r, "disk_artifacts", root, self.p["min_free_percent"], self.p["min_free_gib"])

    def _parents_traversable(self):
        """Report whether the account can traverse every parent of the artifact root."""
        root, name = self.root, self.p["account"]
        blocked = []
        for parent in ancestors(os.path.dirname(root)):
            pst = lstat(parent)
            if pst and not self.ident.can(pst, 1):
                blocked.append(f"{parent} ({owner_text(pst)})")
        if blocked:
            self.r.error(
                "artifact_path",
                f"{name} cannot traverse " + ", ".join(blocked),
                "chmod o+x (or g+x with the group) those directories",
            )
        else:
            self.r.ok("artifact_path", f"{name} can reach {root}")

    def _tree_findings(self, tally):
        """Report the walk's errors, owners, access, group and modes (each with the one repair command)."""
        root, name, group = self.root, self.p["account"], self.p["group"]
        counts, examples, stats = tally.counts, tally.examples, tally.stats
        total = stats["dirs"] + stats["files"] + 1
        repair = (
            f"chown -R {name}:{group} {root} && find {root} -type d -exec chmod {self.p['dir_mode']} "
            f"{{}} + && find {root} -type f -exec chmod {self.p['file_mode']} {{}} + "
            f"(or {TOOLKIT_STORE_FIX}, which repairs owners and modes)"
        )
        if tally.walk_errors:
            self.r.warn(
                "artifact_tree",
                f"{len(tally.walk_errors)} directories could not be read: {tally.walk_errors[: tally.limit]}",
                repair,
            )
        if counts["owner"]:
            by = ", ".join(f"{k}: {v}" for k, v in sorted(tally.owners.items()))
            self.r.error(
                "artifact_owner",
                f"{counts['owner']} of {total} entries are not owned by {name} ({by}), "
                f"e.g. {', '.join(examples['owner'])}",
                repair,
            )
        else:
            self.r.ok("artifact_owner", f"all {total} entries are owned by {name}")
        if counts["unreadable"] or counts["unwritable"]:
            parts = []
            if counts["unreadable"]:
                parts.append(
                    f"cannot read {counts['unreadable']} file(s), e.g. {', '.join(examples['unreadable'])} "
                    "(downloads and the UI fail)"
                )
            if counts["unwritable"]:
                parts.append(
                    f"cannot write into {counts['unwritable']} director(y/ies), e.g. "
                    f"{', '.join(examples['unwritable'])} (uploads fail)"
                )
            self.r.error("artifact_access", f"{name} " + "; ".join(parts), repair)
        if counts["group"]:
            self.r.warn(
                "artifact_group",
                f"{counts['group']} entries are not in group {group}, e.g. {', '.join(examples['group'])}",
                repair,
            )
        self._mode_findings(tally, repair)

    def _mode_findings(self, tally, repair):
        """Report directories and files whose mode is not the expected one."""
        counts, examples, stats = tally.counts, tally.examples, tally.stats
        if counts["dmode"] or counts["fmode"]:
            parts = []
            if counts["dmode"]:
                parts.append(
                    f"{counts['dmode']} of {stats['dirs'] + 1} directories are not {self.p['dir_mode']}, "
                    f"e.g. {', '.join(examples['dmode'])}"
                )
            if counts["fmode"]:
                parts.append(
                    f"{counts['fmode']} of {stats['files']} files are not {self.p['file_mode']}, e.g. "
                    f"{', '.join(examples['fmode'])}"
                )
            self.r.warn("artifact_modes", "; ".join(parts), repair)
        elif not counts["group"]:
            self.r.ok(
                "artifact_modes",
                f"directories {self.p['dir_mode']}, files {self.p['file_mode']}, group {self.p['group']}",
            )
