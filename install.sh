#!/usr/bin/env bash
# Install (or upgrade) hostwarden from this checkout and start it.
#
#   ./install.sh                  install or upgrade, then start the agent
#   ./install.sh --no-start       install or upgrade only
#   ./install.sh --uninstall      remove the program and the unit; keep config, state, tickets and the user
#   ./install.sh --uninstall --purge   also remove /etc/hostwarden, /var/lib/hostwarden and the user
#
# The same command works from a root shell and from a user with sudo: run as a user, the script re-runs
# itself through `sudo` (when there is no sudo, it installs for that user only, see below).
#
# As root: a virtualenv /opt/hostwarden/venv built from the system interpreter /usr/bin/python3 (never the
# first `python3` on PATH: root's pyenv under /root is not executable by the service user), a link
# /usr/local/bin/hostwarden, then `hostwarden install` (system user, /etc/hostwarden with the default config
# and rules, /var/lib/hostwarden, the unit; existing files are never overwritten). With systemd running:
# `systemctl enable` + `restart`, which returns once the agent reported READY=1. Without systemd: the agent
# runs in the foreground as the hostwarden user (`--no-start` skips that).
# A second run upgrades in place: the package in the same virtualenv, the unit; config, state and tickets stay.
#
# As a user without sudo: ~/.local/share/hostwarden/venv, a link in ~/.local/bin, `hostwarden run` in the
# foreground with the embedded defaults (state in ~/.local/state/hostwarden).
#
# Environment: HOSTWARDEN_PYTHON (default /usr/bin/python3), HOSTWARDEN_PREFIX (default /opt/hostwarden),
# HOSTWARDEN_BINDIR (default /usr/local/bin); pip's own PIP_* variables (PIP_INDEX_URL, PIP_FIND_LINKS, ...).
set -euo pipefail
umask 022
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export DEBIAN_FRONTEND=noninteractive

action=install start=1 purge=0
for arg in "$@"; do
    case "$arg" in
        --uninstall) action=uninstall ;;
        --purge) purge=1 ;;
        --no-start) start=0 ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
    esac
done
if [ "$purge" = 1 ] && [ "$action" != uninstall ]; then
    echo "install.sh: --purge goes with --uninstall" >&2; exit 2
fi

python="${HOSTWARDEN_PYTHON:-/usr/bin/python3}"
prefix="${HOSTWARDEN_PREFIX:-/opt/hostwarden}"
bindir="${HOSTWARDEN_BINDIR:-/usr/local/bin}"
unit=/etc/systemd/system/hostwarden.service
say() { echo "install.sh: $*"; }
# pip builds in the source tree: build from a copy, so root never leaves files in a user's checkout.
pip_install() {
    local venv="$1" src
    src="$(mktemp -d)"
    tar -C "$here" --exclude=./.venv --exclude=./build --exclude=./.git --exclude='*.egg-info' -cf - . \
        | tar -C "$src" -xf -
    "$venv/bin/pip" install -q --upgrade "$src" || { rm -rf "$src"; return 1; }
    rm -rf "$src"
}
systemd_running() { [ -d /run/systemd/system ]; }

if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        say "not root: re-running with sudo"
        exec sudo -- env HOSTWARDEN_PYTHON="$python" HOSTWARDEN_PREFIX="$prefix" HOSTWARDEN_BINDIR="$bindir" \
            "$here/install.sh" "$@"
    fi
    # No sudo: a per-user installation running in the foreground.
    venv="${XDG_DATA_HOME:-$HOME/.local/share}/hostwarden/venv"
    if [ "$action" = uninstall ]; then
        rm -rf "$venv"; rm -f "$HOME/.local/bin/hostwarden"
        [ "$purge" = 1 ] && rm -rf "${XDG_STATE_HOME:-$HOME/.local/state}/hostwarden"
        say "removed $venv"; exit 0
    fi
    [ -x "$python" ] || python=python3
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    pip_install "$venv"
    mkdir -p "$HOME/.local/bin" && ln -sfn "$venv/bin/hostwarden" "$HOME/.local/bin/hostwarden"
    say "hostwarden $("$venv/bin/hostwarden" --version | awk '{print $NF}') installed in $venv (no root, no sudo: per-user)"
    [ "$start" = 1 ] || exit 0
    exec "$venv/bin/hostwarden" run
fi

venv="$prefix/venv"
if dpkg-query -W -f='${Status}' hostwarden 2>/dev/null | grep -q "ok installed"; then
    say "hostwarden is installed from the Debian package here: use apt-get (upgrade, remove, purge), not install.sh" >&2
    exit 1
fi

if [ "$action" = uninstall ]; then
    if systemd_running && [ -e "$unit" ]; then
        systemctl disable --now hostwarden.service || true
    fi
    if [ -e "$unit" ] && grep -q hostwarden "$unit"; then rm -f "$unit"; say "removed $unit"; fi
    rm -rf "$unit.d"
    systemd_running && systemctl daemon-reload
    link="$bindir/hostwarden"
    if [ -L "$link" ] && [ "$(readlink "$link")" = "$venv/bin/hostwarden" ]; then rm -f "$link"; fi
    rm -rf "$venv"; rmdir "$prefix" 2>/dev/null || true
    say "removed $venv and $link"
    if [ "$purge" = 1 ]; then
        rm -rf /etc/hostwarden /var/lib/hostwarden
        if getent passwd hostwarden >/dev/null; then userdel hostwarden || true; fi
        if getent group hostwarden >/dev/null; then groupdel hostwarden 2>/dev/null || true; fi
        say "purged /etc/hostwarden, /var/lib/hostwarden and the hostwarden user"
    else
        say "kept /etc/hostwarden (config), /var/lib/hostwarden (state, tickets) and the hostwarden user (--purge removes them)"
    fi
    exit 0
fi

# -- install or upgrade ------------------------------------------------------------------------------------
if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    say "installing python3-venv"
    apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null
fi
# A virtualenv made by another interpreter (an old install from pyenv's python3) is rebuilt from scratch.
home_now=""
[ -f "$venv/pyvenv.cfg" ] && home_now="$(sed -n 's/^home *= *//p' "$venv/pyvenv.cfg")"
if [ -n "$home_now" ] && [ "$home_now" != "$(dirname "$python")" ]; then
    say "rebuilding $venv: it was made by $home_now/python3, not $python"
    rm -rf "$venv"
fi
verb=upgraded
if [ ! -x "$venv/bin/python" ]; then
    verb=installed
    mkdir -p "$prefix"
    "$python" -m venv "$venv"
fi
pip_install "$venv"
version="$("$venv/bin/hostwarden" --version | awk '{print $NF}')"
mkdir -p "$bindir"
if [ -e "$bindir/hostwarden" ] && [ ! -L "$bindir/hostwarden" ]; then
    say "warning: $bindir/hostwarden exists and is not a link: left alone" >&2
else
    ln -sfn "$venv/bin/hostwarden" "$bindir/hostwarden"
fi
"$venv/bin/hostwarden" install --venv "$venv"
say "hostwarden $version $verb in $venv ($bindir/hostwarden)"

if systemd_running; then
    systemctl enable hostwarden.service
    if [ "$start" = 1 ]; then
        # Type=notify: this returns once the agent sent READY=1 (or fails with the reason).
        systemctl restart hostwarden.service
        systemctl --no-pager --lines=0 status hostwarden.service || true
        say "metrics: curl -s http://127.0.0.1:19842/metrics | head; tickets: hostwarden tickets list"
    fi
elif [ "$start" = 1 ]; then
    say "systemd is not running: starting the agent in the foreground as user hostwarden (Ctrl-C stops it)"
    cd /
    exec setpriv --reuid=hostwarden --regid=hostwarden --init-groups --inh-caps=-all \
        env STATE_DIRECTORY=/var/lib/hostwarden "$venv/bin/hostwarden" run --config /etc/hostwarden/hostwarden.yaml
fi
