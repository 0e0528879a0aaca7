# Sourced by scripts/test.sh and .ci/run: points TMPDIR and XDG_RUNTIME_DIR (where memsync's
# default rendezvous directory is) at a fresh directory, removed when the shell exits, so that the
# tests write nowhere else, not even those that pass no `dir`.
sandbox=$(mktemp -d "${TMPDIR:-/tmp}/memsync-tests-XXXXXX")
trap 'rm -rf "$sandbox"' EXIT
# Like /tmp, traversable and sticky: other-users.test.mjs runs processes as another user on
# directories it makes under TMPDIR.
chmod 755 "$sandbox"
mkdir -m 1777 "$sandbox/tmp"
mkdir -m 700 "$sandbox/run"
export TMPDIR="$sandbox/tmp" XDG_RUNTIME_DIR="$sandbox/run"
