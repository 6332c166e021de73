#!/bin/sh
# Validate a systemd unit before Ansible installs it (template `validate:`):
#   verify-unit.sh CANDIDATE_FILE UNIT_NAME
# systemd-analyze verify needs the unit's real name (suffix decides the type), so the candidate
# is checked under that name in a private temporary directory.
set -eu
candidate=$1
name=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cp "$candidate" "$dir/$name"
out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$dir/$name" 2>&1) || {
  printf '%s\n' "$out" >&2
  exit 1
}
# verify exits 0 for some problems it only prints (unknown directives, bad values): refuse those too.
if printf '%s\n' "$out" | grep -v -e '^$' | grep -q .; then
  printf '%s\n' "$out" >&2
  exit 1
fi
