# Sourced by scripts/test.sh and .ci/run: points XDG_RUNTIME_DIR, and with it memsync's default
# rendezvous directory, at a fresh directory removed when the shell exits, so that the tests that
# pass no `dir` write there and not in the user's directory. TMPDIR stays as it is: the tests remove
# the temporary directories they make, and a longer TMPDIR would push their socket paths past the
# 108 bytes of `sun_path`.
sandbox=$(mktemp -d "${TMPDIR:-/tmp}/memsync-tests-XXXXXX")
trap 'rm -rf "$sandbox"' EXIT
export XDG_RUNTIME_DIR="$sandbox"
