"""A real Request Tracker 5 (Debian's `request-tracker5`, SQLite) on 127.0.0.1, once per test session.

The session gets its own site config (RT_SITE_CONFIG / RT_SITE_CONFIG_DIR) and its own copy of the
database the package created, so the system's RT is never touched. A Perl snippet through RT's own API
creates the ticket custom field `alert_fingerprint` (applied to queue General), the API user
`hostwarden` (privileged, queue rights only, an auth token) and a person `ann` (owns/takes tickets,
her own token), and sets $BcryptCost to 4: at the default 12 every authenticated request spends
~200 ms hashing. `rt-server --server Starlet` serves it as www-data; outgoing mail goes to a file.
Needs root and the packages tests/setup/install_rt.sh installs.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.integration.servers.procutil import die_with_parent, stop
from tests.support.agent import free_port

RT_SERVER = Path("/usr/share/request-tracker5/libexec/rt-server")
RT_LIB = Path("/usr/share/request-tracker5/lib")
TEMPLATE_DB = Path("/var/lib/dbconfig-common/sqlite3/request-tracker5/rtdb")
INSTALL_HINT = "run tests/setup/install_rt.sh as root (test.sh does)"
START_TIMEOUT = 120.0
USER = "www-data"

SITE_CONFIG = """\
Set($rtname, 'hostwarden-test');
Set($Organization, 'hostwarden-test');
Set($CorrespondAddress, 'rt@localhost');
Set($CommentAddress, 'rt-comment@localhost');
Set($WebDomain, '127.0.0.1');
Set($WebPort, {port});
Set($WebPath, '');
Set($WebBaseURL, 'http://127.0.0.1:{port}');
Set($DatabaseType, 'SQLite');
Set($DatabaseName, '{dir}/rtdb');
Set($LogToSyslog, undef);
Set($LogToSTDERR, 'warning');
Set($BcryptCost, 4);
Set($MailCommand, 'sendmailpipe');
Set($SendmailPath, '{dir}/sendmail');
Set($SendmailArguments, '');
$RT::MasonDataDir = '{dir}/mason_data';
$RT::MasonSessionDir = '{dir}/session_data';
1;
"""

SENDMAIL = "#!/bin/sh\ncat >> \"$(dirname \"$0\")/mail.log\"\n"

SETUP_PL = r"""
use strict;
use warnings;
use lib '/usr/share/request-tracker5/lib';
use RT;
RT::LoadConfig();
RT::Init();
use JSON;

my $sys = RT->SystemUser;
my $queue = RT::Queue->new($sys);
$queue->Load('General') or die "no queue General";

my $cf = RT::CustomField->new($sys);
my ($ok, $msg) = $cf->Create(Name => 'alert_fingerprint', Type => 'Freeform', MaxValues => 1,
                             LookupType => RT::Ticket->CustomFieldLookupType);
die "cf: $msg" unless $ok;
($ok, $msg) = $cf->AddToObject($queue);
die "cf apply: $msg" unless $ok;

my %rights = (
    hostwarden => [qw(SeeQueue CreateTicket ShowTicket ModifyTicket CommentOnTicket ShowTicketComments
                      SeeCustomField ModifyCustomField)],
    ann        => [qw(SeeQueue ShowTicket ModifyTicket OwnTicket TakeTicket CommentOnTicket ShowTicketComments
                      SeeCustomField DeleteTicket)],
);
my %out;
for my $name (qw(hostwarden ann)) {
    my $u = RT::User->new($sys);
    ($ok, $msg) = $u->Create(Name => $name, EmailAddress => "$name\@example.invalid", Privileged => 1,
                             RealName => ($name eq 'ann' ? 'Ann Oncall' : 'Hostwarden Agent'));
    die "user $name: $msg" unless $ok;
    my $pw = $ENV{"HW_PW_$name"};
    ($ok, $msg) = $u->SetPassword($pw);
    die "password $name: $msg" unless $ok;
    for my $right (@{ $rights{$name} }) {
        ($ok, $msg) = $u->PrincipalObj->GrantRight(Right => $right, Object => $queue);
        die "grant $right to $name: $msg" unless $ok;
    }
    my $token = RT::AuthToken->new($sys);
    my ($tid, $tmsg, $auth) = $token->Create(Owner => $u->id, Description => 'hostwarden tests');
    die "token $name: $tmsg" unless $tid;
    $out{"${name}_token"} = $auth;
    $out{"${name}_id"} = $u->id;
}
my $root = RT::User->new($sys);
$root->Load('root');
($ok, $msg) = $root->SetPassword($ENV{HW_PW_root});
die "root password: $msg" unless $ok;
$out{cf_id} = $cf->id;
$out{queue_id} = $queue->id;
print "HWSETUP " . JSON::encode_json(\%out) . "\n";
"""


@dataclass(frozen=True)
class RtServer:
    url: str
    token: str  # hostwarden's auth token (queue rights only)
    password: str  # hostwarden's password, for basic auth
    person_token: str  # ann's token: a person acting on tickets
    person_id: int
    root_password: str
    queue: str
    queue_id: int
    cf_id: int
    cf_name: str
    dir: Path
    log_path: Path
    startup_seconds: float  # process start → first REST2 answer
    setup_seconds: float  # database copy + Perl setup

    def api(self, method: str, path: str, *, token: str | None = None, **kw: object) -> requests.Response:
        """A REST2 request as a given user (default hostwarden): for tests that act as a person."""
        headers = {"Authorization": f"token {token or self.token}", "Content-Type": "application/json"}
        return requests.request(method, f"{self.url}/REST/2.0/{path.lstrip('/')}", headers=headers, timeout=30,
                                **kw)  # type: ignore[arg-type]


def _skip_unless_installed() -> None:
    missing = [str(p) for p in (RT_SERVER, TEMPLATE_DB) if not p.exists()]
    if missing:
        pytest.skip(f"Request Tracker 5 is not installed ({', '.join(missing)}): {INSTALL_HINT}")
    if os.geteuid() != 0:
        pytest.skip("the RT fixture needs root (to read RT's database and run rt-server as www-data)")
    try:
        pwd.getpwnam(USER)
    except KeyError:
        pytest.skip(f"no {USER} user: {INSTALL_HINT}")


def start_rt() -> Iterator[RtServer]:
    _skip_unless_installed()
    t0 = time.monotonic()
    for stale in Path(tempfile.gettempdir()).glob("hostwarden-rt-*-*"):  # left by a killed test session
        pid = stale.name.split("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    d = Path(tempfile.mkdtemp(prefix=f"hostwarden-rt-{os.getpid()}-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        port = free_port()
        pw = pwd.getpwnam(USER)
        (d / "site.d").mkdir()
        (d / "mason_data").mkdir()
        (d / "session_data").mkdir()
        shutil.copyfile(TEMPLATE_DB, d / "rtdb")
        (d / "RT_SiteConfig.pm").write_text(SITE_CONFIG.format(port=port, dir=d))
        (d / "sendmail").write_text(SENDMAIL)
        (d / "sendmail").chmod(0o755)
        (d / "setup.pl").write_text(SETUP_PL)
        for root, dirs, files in os.walk(d):
            for n in [root, *(os.path.join(root, x) for x in dirs + files)]:
                os.chown(n, pw.pw_uid, pw.pw_gid)
        d.chmod(0o750)
        passwords = {n: secrets.token_hex(12) for n in ("hostwarden", "ann", "root")}
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(d), "LANG": "C.UTF-8",
               "RT_SITE_CONFIG": str(d / "RT_SiteConfig.pm"), "RT_SITE_CONFIG_DIR": str(d / "site.d")}
        run = subprocess.run(["perl", str(d / "setup.pl")], cwd=d, user=USER, group=USER, extra_groups=[],
                             env=env | {f"HW_PW_{k}": v for k, v in passwords.items()}, capture_output=True,
                             timeout=180, check=False)
        line = next((x for x in run.stdout.decode().splitlines() if x.startswith("HWSETUP ")), None)
        if run.returncode != 0 or line is None:
            raise RuntimeError(f"RT setup failed ({run.returncode}): {run.stderr.decode()[-3000:]}")
        info = json.loads(line.removeprefix("HWSETUP "))
        setup_seconds = time.monotonic() - t0
        log_path = d / "server.log"
        t1 = time.monotonic()
        with open(log_path, "wb") as logf:
            proc = subprocess.Popen(
                [str(RT_SERVER), "--server", "Starlet", "--host", "127.0.0.1", "--port", str(port),
                 "--max-workers", "2"],
                cwd=d, env=env, user=USER, group=USER, extra_groups=[], stdout=logf, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=die_with_parent)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"rt-server exited with {proc.returncode}: {log_path.read_text()[-3000:]}")
            try:
                r = requests.get(url + "/REST/2.0/queues/all", timeout=5,
                                 headers={"Authorization": f"token {info['hostwarden_token']}"})
                if r.status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"rt-server not answering after {START_TIMEOUT}s: {log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        yield RtServer(url=url, token=info["hostwarden_token"], password=passwords["hostwarden"],
                       person_token=info["ann_token"], person_id=int(info["ann_id"]),
                       root_password=passwords["root"], queue="General", queue_id=int(info["queue_id"]),
                       cf_id=int(info["cf_id"]), cf_name="alert_fingerprint", dir=d, log_path=log_path,
                       startup_seconds=time.monotonic() - t1, setup_seconds=setup_seconds)
    finally:
        if proc is not None:
            stop(proc)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def rt_server() -> Iterator[RtServer]:
    yield from start_rt()
