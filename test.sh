#!/usr/bin/env bash
# Run the whole hostwarden test suite. As root (or, for a user with sudo, through sudo) it first installs
# what the integration tests start for real on 127.0.0.1: Prometheus, Alertmanager, node_exporter,
# monitoring-plugins, dbus, systemd, Redmine and Request Tracker (SQLite). Extra arguments go to pytest.
# pytest runs as the invoking user; the tests that boot systemd in a namespace (tests/systemd) need root
# and are skipped, with the reason, for anyone else.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
export DEBIAN_FRONTEND=noninteractive

# Root runs the package installation itself; a user with sudo through sudo (no sudo needed as root).
sudo=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then sudo="sudo"; fi
if { [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; } && [ "${HOSTWARDEN_SKIP_APT:-0}" != 1 ]; then
    pkgs=$(grep -v '^#' tests/debian-packages.txt | tr '\n' ' ')
    missing=""
    for p in $pkgs; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"; done
    if [ -n "$missing" ]; then
        echo "test.sh: installing Debian packages:$missing"
        $sudo apt-get update -qq
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    fi
    for s in tests/setup/install_*.sh; do
        [ -x "$s" ] || continue
        echo "test.sh: $s"
        $sudo env DEBIAN_FRONTEND=noninteractive "$here/$s"
    done
fi

# The system interpreter (not the first python3 on PATH, e.g. root's pyenv), when there is one.
if [ ! -x .venv/bin/python ]; then
    if ! /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; }; then
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
    fi
    python=python3
    [ -x /usr/bin/python3 ] && python=/usr/bin/python3
    "$python" -m venv .venv
fi
.venv/bin/pip install -q -e ".[test]"

set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
    echo "test.sh: pytest collected no tests: failing the run" >&2
    exit 1
fi
exit "$rc"
