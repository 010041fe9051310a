#!/usr/bin/env bash
# Install Debian's Redmine (SQLite) unattended, for tests/integration/test_redmine.py.
# Root, non-interactive, idempotent: does nothing when Redmine is already installed and configured.
# The fixture (tests/integration/servers/redmine.py) serves it with WEBrick on 127.0.0.1; nothing is
# started here and no service is enabled.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends)
PKGS=(redmine redmine-sqlite ruby-webrick)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }

all=1
for p in "${PKGS[@]}"; do installed "$p" || all=0; done
if [ "$all" = 1 ] && [ -f /etc/redmine/default/database.yml ]; then
    echo "install_redmine.sh: already installed"
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "install_redmine.sh: must run as root" >&2; exit 1; }

start=$(date +%s)
# dbconfig-common: one instance "default" on SQLite, created at install time without prompting.
debconf-set-selections <<'SEL'
redmine redmine/current-instances string default
redmine redmine/instances/default/dbconfig-install boolean true
redmine redmine/instances/default/database-type select sqlite3
redmine redmine/instances/default/db/dbname string redmine_default
redmine redmine/instances/default/db/basepath string /var/lib/dbconfig-common/sqlite3/redmine/instances/default
redmine redmine/instances/default/default-language select en
SEL

"${APT[@]}" update  # a bare machine has no lists, an old one may name versions the mirror dropped
# Redmine's postinst runs `bundle`; when a newer bundler than Debian's is found it fails with
# "Could not find racc-….gem". Pin the version to Debian's ruby-bundler for the install.
"${APT[@]}" install ruby-bundler
BUNDLER_VERSION=$(dpkg-query -W -f='${Version}' ruby-bundler | sed -e 's/^[0-9]*://' -e 's/-.*//')
export BUNDLER_VERSION
"${APT[@]}" install "${PKGS[@]}"
[ -f /etc/redmine/default/database.yml ] || { echo "install_redmine.sh: no database.yml after install" >&2; exit 1; }
echo "install_redmine.sh: installed in $(( $(date +%s) - start ))s (bundler $BUNDLER_VERSION)"
