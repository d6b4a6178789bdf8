# Sourced by the scripts that use a pinned Python tool (moto, checkov, cargo-lambda): one venv
# per tool, made again only when the installed version is not the pinned one.
#
#   pinned_venv DIR 'PACKAGE[EXTRAS]' VERSION

pinned_venv() {
  local dir=$1 requirement=$2 version=$3 installed
  # Read pip's whole answer before comparing: `pip show | grep -q` under pipefail fails whenever
  # grep stops early and pip gets SIGPIPE, which reinstalled the tool on every run.
  installed="$("$dir/bin/pip" show "${requirement%%[*}" 2>/dev/null | sed -n 's/^Version: //p' || true)"
  [ "$installed" = "$version" ] && return 0
  printf '[%s] installing %s==%s into %s\n' "$(basename "$0")" "$requirement" "$version" "$dir" >&2
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/pip" install -q --disable-pip-version-check "$requirement==$version"
}
