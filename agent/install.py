"""`hostwarden install`: set a host up to run the agent under systemd.

    hostwarden install [--dry-run] [--prefix ROOT] [--venv PATH] [--user hostwarden]

Creates the system user, /etc/hostwarden (+ rules/) and /var/lib/hostwarden, installs the unit
(ExecStart= pointing at this virtualenv's `hostwarden`), copies the default config and shipped rule
files without overwriting any existing file, and runs `systemctl daemon-reload` when systemd is
running. `--dry-run` prints every action and changes nothing.

`--prefix ROOT` installs into a staging tree (packaging, tests): paths are written under ROOT, the
user is added to ROOT/etc/passwd with `useradd --prefix` only when that file exists, and systemctl
is never called — so nothing outside ROOT is touched.
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hostwarden.agent.core.paths import PACKAGE_CONFIG_DIR

UNIT_NAME = "hostwarden.service"
UNIT_DIR = "/etc/systemd/system"
CONFIG_DIR = "/etc/hostwarden"
RULES_DIR = "/etc/hostwarden/rules"
STATE_DIR = "/var/lib/hostwarden"
CONFIG_FILE = "/etc/hostwarden/hostwarden.yaml"
NOLOGIN = "/usr/sbin/nologin"


@dataclass(frozen=True)
class Options:
    root: Path  # "/" for a real install
    venv: Path
    user: str
    dry_run: bool

    @property
    def staged(self) -> bool:
        return self.root != Path("/")

    def at(self, path: str) -> Path:
        return self.root / path.lstrip("/")


@dataclass(frozen=True)
class Step:
    """One action: `text` says what it does; `run` (None for notes) does it."""

    text: str
    run: Callable[[], None] | None = None


# -- users -------------------------------------------------------------------------------------------
def _lookup(root: Path, staged: bool, user: str) -> tuple[int, int] | None:
    """(uid, gid) of `user` in ROOT's passwd (staged) or the host's user database."""
    if not staged:
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            return None
        return pw.pw_uid, pw.pw_gid
    passwd = root / "etc/passwd"
    if not passwd.exists():
        return None
    for line in passwd.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == user and fields[2].isdigit() and fields[3].isdigit():
            return int(fields[2]), int(fields[3])
    return None


def _group_id(root: Path, staged: bool, group: str) -> int | None:
    if not staged:
        try:
            return grp.getgrnam(group).gr_gid
        except KeyError:
            return None
    path = root / "etc/group"
    if not path.exists():
        return None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == group and fields[2].isdigit():
            return int(fields[2])
    return None


def useradd_command(opts: Options) -> list[str]:
    cmd = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", STATE_DIR,
           "--shell", NOLOGIN, "--comment", "hostwarden agent"]
    if opts.staged:
        cmd += ["--prefix", str(opts.root)]
    return [*cmd, opts.user]


def _user_step(opts: Options) -> Step:
    if _lookup(opts.root, opts.staged, opts.user) is not None:
        return Step(f"keep user {opts.user} (exists)")
    if opts.staged and not (opts.root / "etc/passwd").exists():
        return Step(f"skip user {opts.user}: {opts.root}/etc/passwd does not exist")
    cmd = useradd_command(opts)

    def run() -> None:
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60)

    return Step(f"create system user {opts.user}: {shlex.join(cmd)}", run)


# -- files -------------------------------------------------------------------------------------------
def _chown(path: Path, opts: Options, owner: str | None, group: str | None) -> None:
    if os.geteuid() != 0:
        return
    uid = gid = -1
    if owner is not None:
        ids = _lookup(opts.root, opts.staged, owner)
        if ids is None:
            return
        uid = ids[0]
    if group is not None:
        found = _group_id(opts.root, opts.staged, group)
        if found is None:
            return
        gid = found
    os.chown(path, uid, gid)


def _chown_tree(top: Path, opts: Options, owner: str, group: str) -> None:
    """chown `top` and everything below it (symlinks themselves, never their targets)."""
    _chown(top, opts, owner, group)
    ids = _lookup(opts.root, opts.staged, owner)
    gid = _group_id(opts.root, opts.staged, group)
    if ids is None or gid is None or os.geteuid() != 0:
        return
    for base, dirs, files in os.walk(top):
        for name in dirs + files:
            os.lchown(os.path.join(base, name), ids[0], gid)


def _dir_step(opts: Options, path: str, mode: int, owner: str | None = None, group: str | None = None) -> Step:
    target = opts.at(path)
    if target.is_dir():
        ids = _lookup(opts.root, opts.staged, owner) if owner else None
        st = target.stat()
        # A state directory left by running the agent as root (or by another user) would keep the service
        # user from writing its state outside systemd (StateDirectory= fixes it only under systemd).
        if owner and group and (os.geteuid() == 0 or opts.dry_run) and (ids is None or st.st_uid != ids[0]):
            return Step(f"set owner of {target} to {owner}:{group} (recursively; it was uid {st.st_uid})",
                        lambda: _chown_tree(target, opts, owner, group))
        return Step(f"keep directory {target} (exists)")

    def run() -> None:
        target.mkdir(parents=True, exist_ok=True)
        target.chmod(mode)
        _chown(target, opts, owner, group)

    return Step(f"create directory {target} (mode {mode:04o}, owner {owner or 'root'}:{group or 'root'})", run)


def _copy_step(opts: Options, src: Path, dest: str, mode: int, group: str | None) -> Step:
    target = opts.at(dest)
    if target.exists():
        return Step(f"keep {target} (exists, not overwritten)")

    def run() -> None:
        data = src.read_bytes()
        # O_EXCL: a file that appeared since planning is never overwritten.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, mode)
            os.write(fd, data)
        finally:
            os.close(fd)
        _chown(target, opts, None, group)

    return Step(f"copy {src} to {target} (mode {mode:04o}, group {group or 'root'})", run)


def render_unit(template: str, venv: Path) -> str:
    """The shipped unit with ExecStart= running `venv`/bin/hostwarden (arguments kept)."""
    binary = str(venv / "bin" / "hostwarden")
    if re.search(r"[\s\"'\\$%]", binary):
        binary = '"' + binary.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'
    out, n = re.subn(r"^ExecStart=\S+", lambda _m: f"ExecStart={binary}", template, count=1, flags=re.M)
    if n != 1:
        raise ValueError("the unit template has no ExecStart= line")
    return out


def _unit_step(opts: Options, template: Path) -> Step:
    target = opts.at(f"{UNIT_DIR}/{UNIT_NAME}")
    text = render_unit(template.read_text(encoding="utf-8"), opts.venv)
    if target.exists() and target.read_text(encoding="utf-8", errors="replace") == text:
        return Step(f"keep {target} (up to date)")
    verb = "update" if target.exists() else "install"
    exec_line = next(line for line in text.splitlines() if line.startswith("ExecStart="))

    def run() -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.hostwarden-install")
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o644)
        os.replace(tmp, target)

    return Step(f"{verb} {target} ({exec_line})", run)


def _daemon_reload_step(opts: Options) -> Step:
    if opts.staged:
        return Step("skip systemctl daemon-reload (--prefix)")
    if not os.path.isdir("/run/systemd/system"):
        return Step("skip systemctl daemon-reload (systemd is not running)")

    def run() -> None:
        subprocess.run(["systemctl", "daemon-reload"], check=True, capture_output=True, text=True, timeout=120)

    return Step("run systemctl daemon-reload", run)


def plan(opts: Options, config_dir: Path = PACKAGE_CONFIG_DIR) -> list[Step]:
    """Every action of an install, in order; computed from the current state of ROOT."""
    template = config_dir / UNIT_NAME
    default_config = config_dir / "hostwarden.yaml"
    for needed in (template, default_config):
        if not needed.is_file():
            raise FileNotFoundError(f"shipped file {needed} is missing from this installation")
    steps = [_user_step(opts),
             _dir_step(opts, CONFIG_DIR, 0o755),
             _dir_step(opts, RULES_DIR, 0o755),
             _dir_step(opts, STATE_DIR, 0o750, opts.user, opts.user),
             _copy_step(opts, default_config, CONFIG_FILE, 0o640, opts.user)]
    steps += [_copy_step(opts, rule, f"{RULES_DIR}/{rule.name}", 0o640, opts.user)
              for rule in sorted((config_dir / "rules").glob("*.yaml"))]
    steps += [_unit_step(opts, template), _daemon_reload_step(opts)]
    return steps


# -- command -----------------------------------------------------------------------------------------
def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("install", help="install the systemd unit, user, directories and default config (as root)")
    p.add_argument("--dry-run", action="store_true", help="print every action, change nothing")
    p.add_argument("--prefix", default="/", metavar="ROOT",
                   help="install under ROOT instead of / (staging; never calls systemctl)")
    p.add_argument("--venv", default=sys.prefix, metavar="PATH",
                   help="virtualenv whose bin/hostwarden the unit runs (default: the running one, %(default)s)")
    p.add_argument("--user", default="hostwarden", help="system user the service runs as (default: %(default)s)")
    p.set_defaults(func=cmd_install)


def cmd_install(args: argparse.Namespace) -> int:
    opts = Options(root=Path(args.prefix).resolve(), venv=Path(args.venv).absolute(), user=args.user,
                   dry_run=args.dry_run)
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", opts.user):
        print(f"hostwarden install: invalid user name {opts.user!r}", file=sys.stderr)
        return 2
    if not opts.dry_run and not opts.staged and os.geteuid() != 0:
        print("hostwarden install: must run as root (or use --dry-run, or --prefix ROOT)", file=sys.stderr)
        return 1
    try:
        steps = plan(opts)
    except (FileNotFoundError, ValueError) as e:
        print(f"hostwarden install: {e}", file=sys.stderr)
        return 1
    binary = opts.venv / "bin" / "hostwarden"
    if not os.access(binary, os.X_OK):
        print(f"warning: {binary} is not an executable; the unit will not start until it is (see --venv)")
    for step in steps:
        if step.run is None:
            print(step.text)
            continue
        print(("would " if opts.dry_run else "") + step.text, flush=True)
        if opts.dry_run:
            continue
        try:
            step.run()
        except (OSError, subprocess.SubprocessError) as e:
            detail = getattr(e, "stderr", None) or str(e)
            print(f"hostwarden install: failed to {step.text}: {str(detail).strip()}", file=sys.stderr)
            return 1
    if opts.dry_run:
        print("dry run: nothing was changed")
    elif not opts.staged:
        print(f"next: edit {CONFIG_FILE}, check it with `hostwarden check-config {CONFIG_FILE}`, "
              f"then `systemctl enable --now {UNIT_NAME}`")
    return 0
