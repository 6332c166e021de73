#!/usr/bin/python
"""Create the artifact root and its parents, and repair owners and modes of the tree below it."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: artifact_store_tree
short_description: Create an artifact root and repair the owners and modes of its whole tree
description:
  - Makes sure every parent directory of O(path) exists and can be traversed by O(owner),
    creates O(path), and gives every directory below it (O(path) included) O(owner):O(group)
    and O(dir_mode), and every regular file O(owner):O(group) and O(file_mode).
  - The tree is walked once with C(os.scandir); only entries whose owner, group or mode is wrong
    are touched, so a tree that is already right costs one C(lstat) per entry and reports no change.
  - Symbolic links are never followed and never changed; sockets, FIFOs and device nodes are left
    alone. Every entry is changed through a file descriptor opened with C(O_NOFOLLOW) relative to its
    directory, so an entry swapped for a symlink while the walk runs cannot redirect a chown/chmod
    out of the tree.
  - Parents strictly below the home directory of O(owner) belong to the tree's owner and are set like
    tree directories. Other existing parents are never taken over; when one cannot be traversed by
    O(owner), only the single execute bit that O(owner) needs (user, group or other class) is added.
    Missing parents are created as O(owner):O(group) O(dir_mode).
  - A path component inside a directory that is not root-owned, or that others may write to, must not
    be a symlink (it could point anywhere); such a component makes the module fail.
  - Supports check mode (reports what would change, changes nothing) and diff mode (a summary).
options:
  path:
    description: Absolute, normalised path of the artifact root.
    type: path
    required: true
  owner:
    description: User that owns the tree.
    type: str
    required: true
  group:
    description: Group of the tree (operators who may read the artifacts).
    type: str
    required: true
  dir_mode:
    description: Octal mode of every directory of the tree, as a string.
    type: str
    default: "2750"
  file_mode:
    description: Octal mode of every regular file of the tree, as a string.
    type: str
    default: "0640"
  sample_size:
    description: How many changed paths to list in RV(sample).
    type: int
    default: 20
author: MLflow tracking toolkit
"""

EXAMPLES = r"""
- name: Repair the artifact tree
  artifact_store_tree:
    path: /home/mlops/mlflow/mlruns
    owner: mlops
    group: mlops
    dir_mode: "2750"
    file_mode: "0640"
"""

RETURN = r"""
root:
  description: The artifact root (O(path)).
  type: str
  returned: always
created:
  description: Directories created (parents and the root), in order.
  type: list
  returned: always
parents_fixed:
  description: Existing parents that were changed, with what was done.
  type: list
  returned: always
dirs:
  description: Directories of the tree seen (root included).
  type: int
  returned: always
files:
  description: Regular files of the tree seen.
  type: int
  returned: always
dirs_fixed:
  description: Directories of the tree whose owner, group or mode was (or would be) changed.
  type: int
  returned: always
files_fixed:
  description: Regular files whose owner, group or mode was (or would be) changed.
  type: int
  returned: always
symlinks_skipped:
  description: Symbolic links seen and left alone (never followed).
  type: int
  returned: always
others_skipped:
  description: Sockets, FIFOs and device nodes seen and left alone.
  type: int
  returned: always
group_blocked_parents:
  description: Parents that members of O(group) (other than O(owner)) cannot traverse.
  type: list
  returned: always
sample:
  description: Up to O(sample_size) changed entries, "path uid:gid mode -> uid:gid mode".
  type: list
  returned: always
elapsed:
  description: Seconds the module spent.
  type: float
  returned: always
"""

import errno
import grp
import os
import pwd
import stat
import time

from ansible.module_utils.basic import AnsibleModule

DIR_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
FILE_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class TreeError(Exception):
    pass


class Repair:
    def __init__(self, *, path, uid, gid, dir_mode, file_mode, user_groups, home, check, sample_size):
        self.path = path
        self.uid = uid
        self.gid = gid
        self.dir_mode = dir_mode
        self.file_mode = file_mode
        self.user_groups = user_groups
        self.home = home
        self.check = check
        self.sample_size = sample_size
        self.created = []
        self.parents_fixed = []
        self.group_blocked = []
        self.sample = []
        self.counts = dict(dirs=0, files=0, dirs_fixed=0, files_fixed=0, symlinks_skipped=0, others_skipped=0)

    # -- helpers ---------------------------------------------------------------------------
    def _note(self, path, st, mode):
        if len(self.sample) < self.sample_size:
            self.sample.append(
                f"{path} {st.st_uid}:{st.st_gid} {stat.S_IMODE(st.st_mode):04o} -> "
                f"{self.uid}:{self.gid} {mode:04o}"
            )

    def _wrong(self, st, mode):
        return st.st_uid != self.uid or st.st_gid != self.gid or stat.S_IMODE(st.st_mode) != mode

    def _set(self, fd, mode):
        # chown first: changing the owner clears set-id bits, chmod then sets the wanted mode.
        os.fchown(fd, self.uid, self.gid)
        os.fchmod(fd, mode)

    def _traverse_bit(self, st):
        """The execute bit the owner needs on a directory with this stat, or 0 if it has it."""
        if self.uid == 0:
            return 0
        if st.st_uid == self.uid:
            bit = stat.S_IXUSR
        elif st.st_gid in self.user_groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        return 0 if st.st_mode & bit else bit

    def _group_can_traverse(self, st):
        # A member of the group who is not the directory's owner.
        bit = stat.S_IXGRP if st.st_gid == self.gid else stat.S_IXOTH
        return bool(st.st_mode & bit)

    @staticmethod
    def _trusted(st):
        """Whether only root can change the entries of a directory with this stat."""
        return st.st_uid == 0 and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)

    def _open_dir(self, name, parent_fd, shown, nofollow, strict=True):
        """Open a directory; None if it is gone (or, when not strict, no longer a directory)."""
        flags = DIR_OPEN | (os.O_NOFOLLOW if nofollow else 0)
        try:
            return os.open(name, flags, dir_fd=parent_fd)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            if not strict and exc.errno in (errno.ELOOP, errno.ENOTDIR):
                # Swapped for a link or a file since it was listed: left alone.
                self.counts["symlinks_skipped"] += 1
                return None
            # With O_DIRECTORY, Linux answers ENOTDIR (not ELOOP) for a symlink it may not follow.
            is_link = exc.errno in (errno.ELOOP, errno.ENOTDIR) and stat.S_ISLNK(
                os.lstat(name, dir_fd=parent_fd).st_mode
            )
            if is_link:
                raise TreeError(
                    f"{shown} is a symbolic link inside a directory that a non-root user can change; "
                    "refusing to follow it. Replace it with a real directory or point the artifact "
                    "root at the link's target."
                ) from exc
            if exc.errno == errno.ENOTDIR:
                raise TreeError(f"{shown} exists and is not a directory; move it away.") from exc
            raise

    def _mkdir(self, name, parent_fd, shown):
        self.created.append(shown)
        if self.check:
            return None
        os.mkdir(name, 0o700, dir_fd=parent_fd)
        fd = os.open(name, DIR_OPEN | os.O_NOFOLLOW, dir_fd=parent_fd)
        self._set(fd, self.dir_mode)
        return fd

    # -- parents and root ------------------------------------------------------------------
    def prepare_path(self):
        """Walk from / to the root; return an fd of the root (None in check mode if missing)."""
        parts = [p for p in self.path.split("/") if p]
        fd = os.open("/", DIR_OPEN)
        shown = ""
        try:
            for index, name in enumerate(parts):
                is_root = index == len(parts) - 1
                shown = shown + "/" + name
                parent_st = os.fstat(fd)
                child = self._open_dir(name, fd, shown, nofollow=not self._trusted(parent_st))
                if child is None:
                    child = self._mkdir(name, fd, shown)
                    if child is None:  # check mode: this and everything below would be created
                        self.created.extend(
                            "/" + "/".join(parts[: i + 1]) for i in range(index + 1, len(parts))
                        )
                        return None
                    os.close(fd)
                    fd = child
                    continue
                os.close(fd)
                fd = child
                if is_root:
                    return fd
                st = os.fstat(fd)
                managed = self.home not in ("", "/") and shown.startswith(self.home + "/")
                if managed:
                    if self._wrong(st, self.dir_mode):
                        self.parents_fixed.append(
                            f"{shown}: {st.st_uid}:{st.st_gid} {stat.S_IMODE(st.st_mode):04o} -> "
                            f"{self.uid}:{self.gid} {self.dir_mode:04o}"
                        )
                        if not self.check:
                            self._set(fd, self.dir_mode)
                    continue
                bit = self._traverse_bit(st)
                if bit:
                    new = stat.S_IMODE(st.st_mode) | bit
                    self.parents_fixed.append(
                        f"{shown}: {stat.S_IMODE(st.st_mode):04o} -> {new:04o} "
                        "(traversable by the artifact owner)"
                    )
                    if not self.check:
                        os.fchmod(fd, new)
                        st = os.fstat(fd)
                if not self._group_can_traverse(st):
                    self.group_blocked.append(shown)
            return fd
        except BaseException:
            os.close(fd)
            raise

    # -- tree ------------------------------------------------------------------------------
    def _fix_dir(self, fd, shown):
        st = os.fstat(fd)
        self.counts["dirs"] += 1
        if self._wrong(st, self.dir_mode):
            self.counts["dirs_fixed"] += 1
            self._note(shown, st, self.dir_mode)
            if not self.check:
                self._set(fd, self.dir_mode)

    def _fix_file(self, name, dir_fd, shown, st):
        self.counts["files"] += 1
        if not self._wrong(st, self.file_mode):
            return
        if self.check:
            self.counts["files_fixed"] += 1
            self._note(shown, st, self.file_mode)
            return
        try:
            fd = os.open(name, FILE_OPEN, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ELOOP):  # gone or swapped for a link meanwhile
                return
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or not self._wrong(st, self.file_mode):
                return
            self.counts["files_fixed"] += 1
            self._note(shown, st, self.file_mode)
            self._set(fd, self.file_mode)
        finally:
            os.close(fd)

    def _scan(self, fd, shown):
        """Fix the regular files of the directory FD; return the names of its subdirectories."""
        subdirs = []
        with os.scandir(fd) as entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        subdirs.append(entry.name)
                    elif entry.is_file(follow_symlinks=False):
                        self._fix_file(
                            entry.name, fd, shown + "/" + entry.name, entry.stat(follow_symlinks=False)
                        )
                    elif entry.is_symlink():
                        self.counts["symlinks_skipped"] += 1
                    else:
                        self.counts["others_skipped"] += 1
                except FileNotFoundError:
                    continue
        return subdirs

    def walk(self, root_fd):
        # Depth-first with one open fd per level of the current branch only.
        self._fix_dir(root_fd, self.path)
        stack = [(root_fd, self.path, iter(self._scan(root_fd, self.path)))]
        try:
            while stack:
                fd, shown, names = stack[-1]
                name = next(names, None)
                if name is None:
                    os.close(fd)
                    stack.pop()
                    continue
                child_shown = shown + "/" + name
                child = self._open_dir(name, fd, child_shown, nofollow=True, strict=False)
                if child is None:
                    continue
                self._fix_dir(child, child_shown)
                stack.append((child, child_shown, iter(self._scan(child, child_shown))))
        except BaseException:
            for fd, _shown, _names in stack:
                os.close(fd)
            raise

    def run(self):
        root_fd = self.prepare_path()
        if root_fd is not None:
            self.walk(root_fd)


def octal(module, name):
    value = module.params[name]
    try:
        mode = int(str(value), 8)
    except ValueError:
        module.fail_json(msg=f"{name}={value!r} is not an octal mode such as 2750.")
    if mode < 0 or mode > 0o7777:
        module.fail_json(msg=f"{name}={value!r} is out of range.")
    return mode


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            owner=dict(type="str", required=True),
            group=dict(type="str", required=True),
            dir_mode=dict(type="str", default="2750"),
            file_mode=dict(type="str", default="0640"),
            sample_size=dict(type="int", default=20),
        ),
        supports_check_mode=True,
    )
    start = time.monotonic()
    path = module.params["path"]
    if not path.startswith("/") or os.path.normpath(path) != path or path == "/" or "~" in path:
        module.fail_json(msg=f"path={path!r} must be an absolute, normalised path below /.")
    try:
        user = pwd.getpwnam(module.params["owner"])
        gid = grp.getgrnam(module.params["group"]).gr_gid
    except KeyError:
        missing = f"owner {module.params['owner']!r} or group {module.params['group']!r} does not exist"
        if module.check_mode:
            # A preview of a first run: the account is made by an earlier task that check mode
            # did not run. Everything at and below path would then be created or given to it.
            module.exit_json(
                changed=True,
                msg=f"{missing} yet: {path} would be created or repaired for them",
                root=path,
                created=[],
                parents_fixed=[],
                group_blocked_parents=[],
                sample=[],
            )
        module.fail_json(msg=missing + ".")
    home = os.path.normpath(user.pw_dir) if user.pw_dir else ""
    if home == path or home.startswith(path + "/"):
        module.fail_json(msg=f"path {path} would contain the home directory {home} of {user.pw_name}.")

    repair = Repair(
        path=path,
        uid=user.pw_uid,
        gid=gid,
        dir_mode=octal(module, "dir_mode"),
        file_mode=octal(module, "file_mode"),
        user_groups=set(os.getgrouplist(user.pw_name, user.pw_gid)),
        home=home,
        check=module.check_mode,
        sample_size=module.params["sample_size"],
    )
    try:
        repair.run()
    except TreeError as exc:
        module.fail_json(msg=str(exc), created=repair.created, **repair.counts)
    except OSError as exc:
        module.fail_json(
            msg=f"{exc.filename or path}: {exc.strerror}", created=repair.created, **repair.counts
        )

    counts = repair.counts
    changed = bool(repair.created or repair.parents_fixed or counts["dirs_fixed"] or counts["files_fixed"])
    for blocked in repair.group_blocked:
        module.warn(
            f"Members of group {module.params['group']} cannot traverse {blocked}, so they cannot read the "
            "artifacts below it; the role leaves that directory's mode to its owner."
        )
    summary = (
        f"{counts['dirs']} dirs, {counts['files']} files checked; fixed {counts['dirs_fixed']} dirs, "
        f"{counts['files_fixed']} files; created {len(repair.created)} dirs; "
        f"fixed {len(repair.parents_fixed)} parents"
    )
    result = dict(
        changed=changed,
        msg=summary,
        root=path,
        created=repair.created,
        parents_fixed=repair.parents_fixed,
        group_blocked_parents=repair.group_blocked,
        sample=repair.sample,
        elapsed=round(time.monotonic() - start, 3),
        **counts,
    )
    if module._diff and changed:
        before = repair.parents_fixed + [line.split(" -> ")[0] for line in repair.sample]
        after = ["created " + p for p in repair.created] + repair.sample
        result["diff"] = dict(
            before_header=path,
            after_header=path,
            before="\n".join(before + [f"({summary})"]) + "\n",
            after="\n".join(after) + "\n",
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
