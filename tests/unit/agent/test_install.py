"""`hostwarden install`: dry run, and a real install into a temporary root prefix."""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hostwarden.agent import install
from hostwarden.agent.core.paths import PACKAGE_CONFIG_DIR

ROOT = Path(__file__).resolve().parents[3]


def run_install(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    parser = argparse.ArgumentParser(prog="hostwarden")
    install.add_commands(parser.add_subparsers(dest="command"))
    ns = parser.parse_args(["install", *args])
    rc = ns.func(ns)
    out = capsys.readouterr()
    return rc, [line for line in (out.out + out.err).splitlines() if not line.startswith("warning:")]


def make_root(tmp_path: Path) -> Path:
    """A staging root with the account files `useradd --prefix` edits."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\n")
    (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc/gshadow").write_text("root:*::\n")
    for name in ("shadow", "gshadow"):
        (root / "etc" / name).chmod(0o640)
    return root


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_install_dry_run_prints_every_action_and_changes_nothing(tmp_path, capsys) -> None:
    root = make_root(tmp_path)
    before = {p: p.read_bytes() for p in (root / "etc").iterdir()}
    rc, lines = run_install(capsys, "--dry-run", "--prefix", str(root), "--venv", "/opt/hw/venv")
    assert rc == 0
    assert lines[0].startswith("would create system user hostwarden: useradd --system --user-group "
                               "--no-create-home --home-dir /var/lib/hostwarden --shell /usr/sbin/nologin")
    assert f"--prefix {root} hostwarden" in lines[0]
    assert f"would create directory {root}/etc/hostwarden (mode 0755, owner root:root)" in lines
    assert f"would create directory {root}/etc/hostwarden/rules (mode 0755, owner root:root)" in lines
    assert f"would create directory {root}/var/lib/hostwarden (mode 0750, owner hostwarden:hostwarden)" in lines
    assert (f"would copy {PACKAGE_CONFIG_DIR}/hostwarden.yaml to {root}/etc/hostwarden/hostwarden.yaml "
            "(mode 0640, group hostwarden)") in lines
    for rule in sorted((PACKAGE_CONFIG_DIR / "rules").glob("*.yaml")):
        assert any(line.startswith(f"would copy {rule} to {root}/etc/hostwarden/rules/{rule.name}")
                   for line in lines)
    assert (f"would install {root}/etc/systemd/system/hostwarden.service "
            "(ExecStart=/opt/hw/venv/bin/hostwarden run --config /etc/hostwarden/hostwarden.yaml)") in lines
    assert "skip systemctl daemon-reload (--prefix)" in lines
    assert lines[-1] == "dry run: nothing was changed"
    assert tree(root) == ["etc", "etc/group", "etc/gshadow", "etc/passwd", "etc/shadow"]
    assert {p: p.read_bytes() for p in (root / "etc").iterdir()} == before


def test_install_dry_run_without_prefix_touches_nothing_on_host(capsys) -> None:
    unit = Path("/etc/systemd/system/hostwarden.service")
    existed = (unit.exists(), Path("/etc/hostwarden").exists())
    rc, lines = run_install(capsys, "--dry-run", "--venv", "/opt/hw/venv")
    assert rc == 0
    assert any(line.endswith("/etc/systemd/system/hostwarden.service "
                             "(ExecStart=/opt/hw/venv/bin/hostwarden run --config /etc/hostwarden/hostwarden.yaml)")
               for line in lines)
    assert lines[-2].startswith(("would run systemctl daemon-reload", "skip systemctl daemon-reload"))
    assert (unit.exists(), Path("/etc/hostwarden").exists()) == existed


@pytest.mark.skipif(os.geteuid() != 0, reason="useradd and chown in the staging root need root")
def test_install_prefix_real_install_creates_user_tree_and_modes(tmp_path, capsys) -> None:
    if shutil.which("useradd") is None:
        pytest.skip("useradd (Debian package 'passwd') is not installed")
    root = make_root(tmp_path)
    host_user = _host_user("hostwarden")
    rc, lines = run_install(capsys, "--prefix", str(root), "--venv", "/opt/hw/venv")
    assert rc == 0, lines
    entry = next(line for line in (root / "etc/passwd").read_text().splitlines() if line.startswith("hostwarden:"))
    _, _, uid, gid, _, home, shell = entry.split(":")
    assert (home, shell) == ("/var/lib/hostwarden", "/usr/sbin/nologin")
    assert f"hostwarden:x:{gid}:" in (root / "etc/group").read_text()
    assert _host_user("hostwarden") == host_user  # the host's user database is untouched

    def mode(rel: str) -> tuple[int, int, int]:
        st = (root / rel).stat()
        return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid

    assert mode("etc/hostwarden") == (0o755, 0, 0)
    assert mode("etc/hostwarden/rules") == (0o755, 0, 0)
    assert mode("var/lib/hostwarden") == (0o750, int(uid), int(gid))
    assert mode("etc/hostwarden/hostwarden.yaml") == (0o640, 0, int(gid))
    assert mode("etc/systemd/system/hostwarden.service")[0] == 0o644
    shipped = (PACKAGE_CONFIG_DIR / "hostwarden.yaml").read_bytes()
    assert (root / "etc/hostwarden/hostwarden.yaml").read_bytes() == shipped
    for rule in (PACKAGE_CONFIG_DIR / "rules").glob("*.yaml"):
        assert (root / "etc/hostwarden/rules" / rule.name).read_bytes() == rule.read_bytes()
    unit = (root / "etc/systemd/system/hostwarden.service").read_text()
    assert "ExecStart=/opt/hw/venv/bin/hostwarden run --config /etc/hostwarden/hostwarden.yaml\n" in unit
    assert unit.replace("/opt/hw/venv/bin/hostwarden", "/opt/hostwarden/venv/bin/hostwarden") == \
        (PACKAGE_CONFIG_DIR / "hostwarden.service").read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="useradd and chown in the staging root need root")
def test_install_prefix_second_run_keeps_existing_config(tmp_path, capsys) -> None:
    if shutil.which("useradd") is None:
        pytest.skip("useradd (Debian package 'passwd') is not installed")
    root = make_root(tmp_path)
    assert run_install(capsys, "--prefix", str(root), "--venv", "/opt/hw/venv")[0] == 0
    config = root / "etc/hostwarden/hostwarden.yaml"
    config.write_text("# edited by ops\n")
    passwd = (root / "etc/passwd").read_text()
    rc, lines = run_install(capsys, "--prefix", str(root), "--venv", "/opt/hw/venv")
    assert rc == 0
    assert config.read_text() == "# edited by ops\n"
    assert (root / "etc/passwd").read_text() == passwd
    assert "keep user hostwarden (exists)" in lines
    assert f"keep {config} (exists, not overwritten)" in lines
    assert f"keep {root}/etc/systemd/system/hostwarden.service (up to date)" in lines
    assert not any(line.startswith(("create ", "copy ", "install ", "update ")) for line in lines)
    # a new venv updates the unit, and only the unit
    rc, lines = run_install(capsys, "--prefix", str(root), "--venv", "/srv/other venv")
    assert rc == 0
    assert any(line.startswith(f"update {root}/etc/systemd/system/hostwarden.service") for line in lines)
    unit = (root / "etc/systemd/system/hostwarden.service").read_text()
    assert 'ExecStart="/srv/other venv/bin/hostwarden" run' in unit
    assert config.read_text() == "# edited by ops\n"


def test_install_prefix_without_passwd_skips_user_installs_files(tmp_path, capsys) -> None:
    root = tmp_path / "bare"
    root.mkdir()
    rc, lines = run_install(capsys, "--prefix", str(root), "--venv", "/opt/hw/venv")
    assert rc == 0, lines
    assert lines[0] == f"skip user hostwarden: {root}/etc/passwd does not exist"
    assert (root / "etc/hostwarden/hostwarden.yaml").is_file()
    assert (root / "var/lib/hostwarden").is_dir()
    assert (root / "etc/systemd/system/hostwarden.service").is_file()


def test_install_invalid_user_name_usage_error(tmp_path, capsys) -> None:
    rc, lines = run_install(capsys, "--dry-run", "--prefix", str(tmp_path), "--user", "bad name")
    assert rc == 2
    assert "invalid user name" in lines[0]


def test_render_unit_quotes_paths_with_spaces() -> None:
    text = "[Service]\nExecStart=/opt/x/bin/hostwarden run --config /etc/hostwarden/hostwarden.yaml\n"
    assert install.render_unit(text, Path("/srv/my venv")) == \
        '[Service]\nExecStart="/srv/my venv/bin/hostwarden" run --config /etc/hostwarden/hostwarden.yaml\n'
    with pytest.raises(ValueError, match="no ExecStart"):
        install.render_unit("[Service]\n", Path("/x"))


def test_cli_install_dry_run_through_hostwarden_command(tmp_path) -> None:
    res = subprocess.run([sys.executable, "-m", "hostwarden.agent.cli", "install", "--dry-run",
                          "--prefix", str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "would install" in res.stdout and res.stdout.rstrip().endswith("dry run: nothing was changed")
    assert list(tmp_path.iterdir()) == []


def _host_user(name: str) -> tuple | None:
    try:
        return tuple(pwd.getpwnam(name))
    except KeyError:
        return None


@pytest.mark.skipif(os.geteuid() != 0, reason="useradd and chown in the staging root need root")
def test_install_prefix_state_dir_owned_by_root_is_given_to_the_service_user(tmp_path, capsys) -> None:
    """`hostwarden run` as root leaves /var/lib/hostwarden owned by root; the install hands it over."""
    if shutil.which("useradd") is None:
        pytest.skip("useradd (Debian package 'passwd') is not installed")
    root = make_root(tmp_path)
    state = root / "var/lib/hostwarden"
    (state / "textfile").mkdir(parents=True)
    (state / "state.db").write_text("")
    rc, lines = run_install(capsys, "--prefix", str(root), "--venv", "/opt/hw/venv")
    assert rc == 0, lines
    assert any(line.startswith(f"set owner of {state} to hostwarden:hostwarden") for line in lines), lines
    entry = next(line for line in (root / "etc/passwd").read_text().splitlines() if line.startswith("hostwarden:"))
    uid, gid = int(entry.split(":")[2]), int(entry.split(":")[3])
    for path in (state, state / "textfile", state / "state.db"):
        assert (path.stat().st_uid, path.stat().st_gid) == (uid, gid), path
    rc, lines = run_install(capsys, "--prefix", str(root), "--venv", "/opt/hw/venv")
    assert f"keep directory {state} (exists)" in lines
