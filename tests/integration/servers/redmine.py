"""A real Redmine (Debian's `redmine` + `redmine-sqlite`) on 127.0.0.1, once per test session.

Each session gets its own Redmine *instance* (Debian's multi-tenancy: REDMINE_INSTANCE selects
/var/lib/redmine/<name>/config/database.yml) whose SQLite database is a copy of the one the package
installed (migrated, default data loaded), so tests never touch the system's instance. `bin/rails
runner` turns the REST API on and creates what REST cannot: the filterable string custom field
`alert_fingerprint`, a project, an API user without admin rights and a second person. WEBrick serves
it as www-data. Needs root (to write /var/lib/redmine and switch to www-data) and the packages that
tests/setup/install_redmine.sh installs.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.integration.servers.procutil import die_with_parent, stop
from tests.support.agent import free_port

SHARE = Path("/usr/share/redmine")
INSTANCES = Path("/var/lib/redmine")
TEMPLATE_DB = Path("/var/lib/dbconfig-common/sqlite3/redmine/instances/default/redmine_default")
INSTALL_HINT = "run tests/setup/install_redmine.sh as root (test.sh does)"
START_TIMEOUT = 120.0
USER = "www-data"

SETUP_RB = r"""
require 'json'
Setting.rest_api_enabled = '1'
Setting.login_required = '0'
Setting.text_formatting = ENV.fetch('HW_TEXT_FORMATTING', 'textile')
trackers = Tracker.sorted.to_a
cf = IssueCustomField.new(name: 'alert_fingerprint', field_format: 'string', is_filter: true, is_for_all: true,
                          searchable: true, visible: true)
cf.trackers = trackers
cf.save!
project = Project.new(name: 'Ops', identifier: 'ops', is_public: true)
project.trackers = trackers
project.enabled_module_names = ['issue_tracking']
project.issue_custom_fields = [cf]
project.save!
IssueCategory.create!(project: project, name: 'Storage')
role = Role.find_by!(name: 'Manager')
people = {}
[['hostwarden', 'Hostwarden', 'Agent'], ['ann', 'Ann', 'Oncall']].each do |login, first, last|
  u = User.new(firstname: first, lastname: last, mail: "#{login}@example.invalid", language: 'en')
  u.login = login
  u.password = SecureRandom.hex(16)
  u.status = User::STATUS_ACTIVE
  u.save!
  Member.create!(principal: u, project: project, role_ids: [role.id])
  people[login] = u
end
admin = User.find_by_login('admin')
puts 'HWSETUP ' + JSON.generate(
  admin_key: admin.api_key, user_key: people['hostwarden'].api_key, person_key: people['ann'].api_key,
  person_id: people['ann'].id, person_name: people['ann'].name, project_id: project.id, cf_id: cf.id)
"""


@dataclass(frozen=True)
class RedmineServer:
    url: str
    admin_key: str
    user_key: str  # "hostwarden": a project member (Manager), not an admin
    person_key: str  # "ann": another member, playing the on-call person
    person_id: int
    person_name: str
    project: str
    project_id: int
    cf_id: int
    cf_name: str
    instance_dir: Path
    log_path: Path
    startup_seconds: float  # process start → first API answer
    setup_seconds: float  # instance copy + rails runner

    def api(self, method: str, path: str, *, key: str | None = None, headers: dict[str, str] | None = None,
            **kw: object) -> requests.Response:
        """A request as a given user (default the admin): for tests that act as a person."""
        h = {"X-Redmine-API-Key": key or self.admin_key} | (headers or {})
        return requests.request(method, self.url + path, headers=h, timeout=30, **kw)  # type: ignore[arg-type]


    def rails(self, ruby: str) -> str:
        """Run Ruby in this instance through `bin/rails runner` (as www-data); returns its stdout."""
        run = subprocess.run(["bin/rails", "runner", ruby], cwd=SHARE, env=_env(self.instance_dir.name), user=USER,
                             group=USER, extra_groups=[], capture_output=True, text=True, timeout=180, check=False)
        if run.returncode != 0:
            raise RuntimeError(f"rails runner failed ({run.returncode}): {run.stderr[-3000:]}")
        return run.stdout


def _skip_unless_installed() -> None:
    missing = [str(p) for p in (SHARE / "config.ru", TEMPLATE_DB) if not p.exists()]
    if missing or not shutil.which("rackup"):
        pytest.skip(f"Redmine is not installed ({', '.join(missing) or 'no rackup'}): {INSTALL_HINT}")
    if os.geteuid() != 0:
        pytest.skip("the Redmine fixture needs root (a Redmine instance under /var/lib/redmine, run as www-data)")
    try:
        pwd.getpwnam(USER)
    except KeyError:
        pytest.skip(f"no {USER} user: {INSTALL_HINT}")


def _remove_stale_instances() -> None:
    """Instances left by a test session that was killed (its pid is gone)."""
    for d in INSTANCES.glob("hwtest-*-*"):
        pid = d.name.split("-")[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(d, ignore_errors=True)


def _make_instance(name: str) -> Path:
    d = INSTANCES / name
    for sub in ("config", "db", "log", "tmp/cache", "tmp/pids", "tmp/sessions", "tmp/sockets", "files",
                "public/plugin_assets"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TEMPLATE_DB, d / "db" / "redmine.sqlite3")
    (d / "config" / "database.yml").write_text(
        f"production:\n  adapter: sqlite3\n  database: {d / 'db' / 'redmine.sqlite3'}\n  timeout: 10000\n")
    (d / "config" / "secret_key.txt").write_text(secrets.token_hex(32) + "\n")
    (d / "setup.rb").write_text(SETUP_RB)
    pw = pwd.getpwnam(USER)
    for root, dirs, files in os.walk(d):
        for n in [root, *(os.path.join(root, x) for x in dirs + files)]:
            os.chown(n, pw.pw_uid, pw.pw_gid)
    return d


def _env(name: str) -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "RAILS_ENV": "production",
            "REDMINE_INSTANCE": name, "RAILS_LOG_TO_STDOUT": ""}


def start_redmine(*, text_formatting: str = "textile") -> Iterator[RedmineServer]:
    _skip_unless_installed()
    _remove_stale_instances()
    name = f"hwtest-{os.getpid()}-{secrets.token_hex(3)}"
    t0 = time.monotonic()
    d = _make_instance(name)
    proc: subprocess.Popen[bytes] | None = None
    try:
        env = _env(name) | {"HW_TEXT_FORMATTING": text_formatting}
        run = subprocess.run(["bin/rails", "runner", str(d / "setup.rb")], cwd=SHARE, env=env, user=USER,
                             group=USER, extra_groups=[], capture_output=True, timeout=180, check=False)
        line = next((x for x in run.stdout.decode().splitlines() if x.startswith("HWSETUP ")), None)
        if run.returncode != 0 or line is None:
            raise RuntimeError(f"redmine setup failed ({run.returncode}): {run.stderr.decode()[-3000:]}")
        info = json.loads(line.removeprefix("HWSETUP "))
        setup_seconds = time.monotonic() - t0
        port = free_port()
        log_path = d / "log" / "server.log"
        t1 = time.monotonic()
        with open(log_path, "wb") as logf:
            proc = subprocess.Popen(
                ["rackup", "-r", "webrick", "-s", "webrick", "-E", "production", "-o", "127.0.0.1", "-p", str(port)],
                cwd=SHARE, env=env, user=USER, group=USER, extra_groups=[], stdout=logf, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=die_with_parent)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"redmine exited with {proc.returncode}: {log_path.read_text()[-3000:]}")
            try:
                r = requests.get(url + "/issue_statuses.json", headers={"X-Redmine-API-Key": info["admin_key"]},
                                 timeout=5)
                if r.status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redmine not answering after {START_TIMEOUT}s: {log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        yield RedmineServer(
            url=url, admin_key=info["admin_key"], user_key=info["user_key"], person_key=info["person_key"],
            person_id=int(info["person_id"]), person_name=info["person_name"], project="ops",
            project_id=int(info["project_id"]), cf_id=int(info["cf_id"]), cf_name="alert_fingerprint",
            instance_dir=d, log_path=log_path, startup_seconds=time.monotonic() - t1, setup_seconds=setup_seconds)
    finally:
        if proc is not None:
            stop(proc)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def redmine_server() -> Iterator[RedmineServer]:
    """The session's Redmine (textile formatting, like a fresh install)."""
    yield from start_redmine()
