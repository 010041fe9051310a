#!/usr/bin/env bash
# Install Debian's Request Tracker 5 (SQLite, standalone server) unattended, for
# tests/integration/test_rt.py. Root, non-interactive, idempotent. Nothing is started here: the
# fixture (tests/integration/servers/rt.py) runs `rt-server --server Starlet` on 127.0.0.1 with its own
# copy of the database.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends)
PKGS=(request-tracker5 rt5-db-sqlite rt5-standalone starlet)
SITE=/etc/request-tracker5/RT_SiteConfig.pm

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }

all=1
for p in "${PKGS[@]}"; do installed "$p" || all=0; done
if [ "$all" = 1 ] && [ -f "$SITE" ]; then
    echo "install_rt.sh: already installed"
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "install_rt.sh: must run as root" >&2; exit 1; }

start=$(date +%s)
# dbconfig-common on SQLite; the site config group-readable by www-data (the web server's user);
# no cron jobs. The root password is set per test session by the fixture, not here.
debconf-set-selections <<'SEL'
request-tracker5 request-tracker5/dbconfig-install boolean true
request-tracker5 request-tracker5/database-type select sqlite3
request-tracker5 request-tracker5/db/dbname string rtdb
request-tracker5 request-tracker5/db/basepath string /var/lib/dbconfig-common/sqlite3/request-tracker5
request-tracker5 request-tracker5/handle-siteconfig-permissions boolean true
request-tracker5 request-tracker5/install-cronjobs boolean false
request-tracker5 request-tracker5/rtname string hostwarden-test
request-tracker5 request-tracker5/organization string hostwarden-test
request-tracker5 request-tracker5/correspondaddress string rt@localhost
request-tracker5 request-tracker5/commentaddress string rt-comment@localhost
request-tracker5 request-tracker5/webbaseurl string http://127.0.0.1
request-tracker5 request-tracker5/webpath string
SEL

"${APT[@]}" update  # a bare machine has no lists, an old one may name versions the mirror dropped
"${APT[@]}" install "${PKGS[@]}"
# Group read for www-data even when an earlier install left the file root-only.
chgrp www-data "$SITE" && chmod 0640 "$SITE"
echo "install_rt.sh: installed in $(( $(date +%s) - start ))s"
