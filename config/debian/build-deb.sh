#!/usr/bin/env bash
# Build hostwarden_<version>_<arch>.deb with dpkg-deb (what `make deb` runs). No chroot, no root needed.
#
# The private virtualenv is created in a staging tree (build/deb/root/opt/hostwarden/venv) from
# /usr/bin/python3.X, the project and its dependencies are installed into it with pip (the network is used
# for PyPI only, or pip's own PIP_FIND_LINKS/PIP_NO_INDEX), and every absolute path pip wrote (console
# script shebangs, pyvenv.cfg's `command`) is rewritten from the staging path to /opt/hostwarden/venv;
# the build fails if any staging path is left. Nothing is written outside build/ and the output directory,
# so an installed /opt/hostwarden is never touched. No .pyc is shipped: postinst byte-compiles.
#
# Environment: DEB_VERSION (default: the version in pyproject.toml), DEB_OUTDIR (default: the repository),
# HOSTWARDEN_PYTHON (default /usr/bin/python3; the package then depends on that python3.X),
# DEB_COMPRESS (dpkg-deb -Z: xz, the default, gzip, zstd, none), DEB_REUSE_VENV=1 (repackage the virtualenv staged by the previous build, e.g. under another DEB_VERSION).
set -euo pipefail
umask 022
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
pkgdir="$repo/config/debian"
python="${HOSTWARDEN_PYTHON:-/usr/bin/python3}"
pyver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
python="/usr/bin/python$pyver"          # the versioned interpreter: the venv is tied to this minor version
version="${DEB_VERSION:-$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$repo/pyproject.toml" | head -1)}"
arch="$(dpkg --print-architecture)"
outdir="${DEB_OUTDIR:-$repo}"
work="$repo/build/deb"
stage="$work/root"
venv_real=/opt/hostwarden/venv
venv="$stage$venv_real"
deb="$outdir/hostwarden_${version}_${arch}.deb"

if [ "${DEB_REUSE_VENV:-0}" = 1 ] && [ -x "$venv/bin/hostwarden" ]; then
    echo "build-deb.sh: reusing the virtualenv staged in $venv" >&2
    find "$stage" -mindepth 1 -maxdepth 1 ! -name opt -exec rm -rf {} +
else
    rm -rf "$work"
    mkdir -p "$work/src"
    # A clean copy of the sources (pip builds in the tree; no .venv, build/ or .git in the package).
    tar -C "$repo" --exclude=./.venv --exclude=./build --exclude=./.git --exclude='*.egg-info' \
        --exclude='./hostwarden_*.deb' -cf - . | tar -C "$work/src" -xf -
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --no-compile "$work/src"
    "$venv/bin/pip" uninstall -q -y pip setuptools >/dev/null 2>&1 || true
    rm -f "$venv"/bin/activate* "$venv"/bin/Activate.ps1 "$venv"/bin/pip*
    find "$venv" -name __pycache__ -type d -prune -exec rm -rf {} +
    find "$venv" -name direct_url.json -delete
    rmdir "$venv/include/python$pyver" "$venv/include" 2>/dev/null || true
    # As dh_strip: no debugging symbols in the wheels' extension modules; modules are not executables.
    find "$venv" -type f -name '*.so*' -exec strip --strip-unneeded --remove-section=.comment \
        --remove-section=.note {} +
    find "$venv/lib" -type f -perm /111 ! -name '*.so*' -exec chmod a-x {} +
    # Absolute staging paths -> the installed path (shebangs of console scripts, pyvenv.cfg).
    grep -rlI --null -F "$venv" "$venv" | xargs -0 -r sed -i "s#$venv#$venv_real#g"
fi
mkdir -p "$stage/DEBIAN" "$outdir"
# RECORD files list the files removed above; pip only reads them to uninstall, which never happens here.
if left="$(grep -rlI -F "$stage" "$stage")"; then
    echo "build-deb.sh: staging path left in: $left" >&2; exit 1
fi

# Unit, sysusers, config (conffiles), docs.
install -D -m 0644 "$repo/config/hostwarden.service" "$stage/lib/systemd/system/hostwarden.service"
sed -i 's|^# Installed by `hostwarden install`.*|# Installed by the hostwarden Debian package.|' "$stage/lib/systemd/system/hostwarden.service"
install -D -m 0644 "$pkgdir/hostwarden.sysusers" "$stage/usr/lib/sysusers.d/hostwarden.conf"
install -D -m 0644 "$repo/config/hostwarden.yaml" "$stage/etc/hostwarden/hostwarden.yaml"
for rule in "$repo"/config/rules/*.yaml; do
    install -D -m 0644 "$rule" "$stage/etc/hostwarden/rules/$(basename "$rule")"
done
install -d -m 0755 "$stage/usr/bin"
ln -s "$venv_real/bin/hostwarden" "$stage/usr/bin/hostwarden"
install -d -m 0755 "$stage/usr/share/man/man1"
gzip -9n < "$pkgdir/hostwarden.1" > "$stage/usr/share/man/man1/hostwarden.1.gz"
chmod 0644 "$stage/usr/share/man/man1/hostwarden.1.gz"
doc="$stage/usr/share/doc/hostwarden"
install -D -m 0644 "$pkgdir/copyright" "$doc/copyright"
install -m 0644 "$repo/README.md" "$doc/README.md"
install -m 0644 "$repo/docs/operations.md" "$doc/operations.md"
maintainer="hostwarden maintainers <hostwarden@example.org>"
{
    echo "hostwarden ($version) unstable; urgency=medium"
    echo
    echo "  * Built from the hostwarden repository ($(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown))."
    echo
    echo " -- $maintainer  $(date -R -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}")"
} | gzip -9n > "$doc/changelog.gz"

(cd "$stage" && find etc -type f -printf '/%p\n' | sort) > "$stage/DEBIAN/conffiles"
for script in preinst postinst prerm postrm; do
    install -m 0755 "$pkgdir/$script" "$stage/DEBIAN/$script"
done
# glibc floor: the highest manylinux_2_N tag among the bundled wheels' compiled modules.
glibc="$(find "$venv" -name WHEEL -path '*dist-info*' -exec sed -n 's/^Tag: .*manylinux_\([0-9]*\)_\([0-9]*\)_.*/\1.\2/p' {} + \
    | sort -V | tail -1)"
size="$(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: hostwarden
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Depends: python$pyver, libc6 (>= ${glibc:-2.17}), systemd | systemd-standalone-sysusers | systemd-sysusers
Section: admin
Priority: optional
Homepage: https://github.com/hostwarden/hostwarden
Description: host monitoring and alerting agent with incident tickets
 hostwarden collects host metrics under node_exporter's names and serves them
 on /metrics, evaluates Prometheus alert rules on the host itself, runs service
 checks and opens, updates and resolves incident tickets by itself (local
 SQLite store, Redmine, Request Tracker, Jira, ServiceNow, Zammad, GitHub/Gitea,
 e-mail, webhooks, Alertmanager).
 .
 The agent and its Python dependencies live in a private virtualenv under
 /opt/hostwarden; it runs as the hostwarden system user under a hardened
 systemd unit.
CONTROL
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
    > "$stage/DEBIAN/md5sums"
dpkg-deb --root-owner-group -Z"${DEB_COMPRESS:-xz}" --build "$stage" "$deb" >/dev/null
echo "$deb"
