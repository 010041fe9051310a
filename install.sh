#!/usr/bin/env bash
# Install hostwarden into a dedicated virtualenv and run it.
#   As root on a systemd host: /opt/hostwarden/venv, `hostwarden install`, `systemctl enable --now`.
#   Otherwise: ~/.local/share/hostwarden/venv and `hostwarden run` in the foreground.
# Embedded defaults: local SQLite ticket store, /metrics on 127.0.0.1:19842.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" = 0 ] && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
fi

if [ "$(id -u)" = 0 ]; then venv="${HOSTWARDEN_VENV:-/opt/hostwarden/venv}"; else
    venv="${HOSTWARDEN_VENV:-${XDG_DATA_HOME:-$HOME/.local/share}/hostwarden/venv}"; fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
"$venv/bin/pip" install -q "$here"
echo "hostwarden installed in $venv"

if [ "$(id -u)" = 0 ] && [ -d /run/systemd/system ] && [ "${HOSTWARDEN_FOREGROUND:-0}" != 1 ]; then
    "$venv/bin/hostwarden" install --venv "$venv"
    systemctl enable --now hostwarden.service
    systemctl --no-pager status hostwarden.service || true
    echo "metrics: curl -s http://127.0.0.1:19842/metrics | head; tickets: $venv/bin/hostwarden tickets list"
else
    exec "$venv/bin/hostwarden" run "$@"
fi
