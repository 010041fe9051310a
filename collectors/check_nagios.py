"""`nagios` check: run a Nagios / Monitoring-Plugins compatible plugin and map its exit code and output.

The plugin runs without a shell (argv list), with an explicit environment (PATH, LANG=C, LC_ALL=C,
`env:` and the `env_passthrough:` variables copied from the agent's environment), stdin from
/dev/null, in its own session/process group. On timeout the whole group is killed. At most
`max_output_bytes` of stdout are kept (the rest is read and discarded, so a chatty plugin neither
blocks nor eats memory). Exit 0/1/2/3 → OK/WARNING/CRITICAL/UNKNOWN, anything else → UNKNOWN.
"""

from __future__ import annotations

import dataclasses
import os
import selectors
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field

from hostwarden.agent.core.samples import MetricDef, Sample, metric_defs
from hostwarden.collectors.checks import CheckConfig, CheckResult, Status, register_check, resolve_path, sample
from hostwarden.collectors.perfdata import PerfItem, parse_output

DEFAULT_PATH = ("/usr/lib/nagios/plugins:/usr/lib64/nagios/plugins:/usr/local/lib/nagios/plugins:"
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
STDERR_CAP = 4096
DETAILS_CAP = 8192


@dataclass(frozen=True)
class NagiosConfig(CheckConfig):
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    env_passthrough: list[str] = field(default_factory=list)  # names copied from the agent's environment
    path: str = DEFAULT_PATH  # the plugin's PATH; also where a bare command name is looked up
    max_output_bytes: int = 65536
    max_perfdata: int = 100  # perfdata items exported per run (plugin output is not trusted to be bounded)

    def validate(self) -> list[str]:
        problems = super().validate()
        if not self.command or not self.command[0]:
            problems.append("command is required: a list, e.g. [/usr/lib/nagios/plugins/check_disk, -w, '10%']")
        if self.max_output_bytes < 256:
            problems.append("max_output_bytes must be at least 256")
        if self.max_perfdata < 0:
            problems.append("max_perfdata must not be negative")
        return problems

    def with_base_dir(self, base_dir: str) -> NagiosConfig:
        if self.command and "/" in self.command[0]:
            return dataclasses.replace(self, command=[resolve_path(self.command[0], base_dir), *self.command[1:]])
        return self


@dataclass(frozen=True)
class PluginRun:
    returncode: int | None  # None: killed at the timeout
    stdout: str
    stderr: str
    truncated: bool


class PluginError(Exception):
    """The plugin could not be started."""


def find_executable(command: str, path: str) -> str:
    if "/" not in command:
        found = shutil.which(command, path=path)
        if found is None:
            raise PluginError(f"plugin {command!r} not found (or not executable) in {path}")
        return found
    if not os.path.exists(command):
        raise PluginError(f"plugin {command} does not exist")
    if os.path.isdir(command) or not os.access(command, os.X_OK):
        raise PluginError(f"plugin {command} is not executable")
    return command


def run_plugin(argv: list[str], env: dict[str, str], deadline: float, *, max_output: int,
               running: set[subprocess.Popen] | None = None, user: str | None = None) -> PluginRun:
    """Run argv until it exits or the monotonic deadline passes (then kill its process group).

    `running`, when given, holds the process while it runs, so its owner can kill it on shutdown.
    `user`, when given, runs it as that user (its primary group, no supplementary groups)."""
    ids: dict[str, object] = {}
    if user is not None:
        import pwd

        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            raise PluginError(f"cannot run {argv[0]}: no such user {user!r}") from None
        ids = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=env, cwd="/", close_fds=True, start_new_session=True, **ids)  # type: ignore[call-overload]
    except (OSError, subprocess.SubprocessError) as e:
        raise PluginError(f"cannot run plugin {argv[0]}: {getattr(e, 'strerror', None) or e}") from None
    if running is not None:
        running.add(proc)
    try:
        return _collect(proc, deadline, max_output)
    finally:
        if running is not None:
            running.discard(proc)


def _collect(proc: subprocess.Popen, deadline: float, max_output: int) -> PluginRun:
    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    caps = {out_fd: max_output, err_fd: STDERR_CAP}
    bufs: dict[int, bytearray] = {fd: bytearray() for fd in caps}
    truncated = False
    timed_out = False
    with selectors.DefaultSelector() as sel:
        for fd in caps:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            exited = proc.poll() is not None
            # once the plugin has exited, drain what is buffered but do not wait for a grandchild
            # that inherited the pipe
            events = sel.select(0 if exited else min(left, 0.25))
            if not events and exited:
                break
            for key, _ in events:
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fd)
                    continue
                room = caps[key.fd] - len(bufs[key.fd])
                if room > 0:
                    bufs[key.fd] += chunk[:room]
                if len(chunk) > room and key.fd == out_fd:
                    truncated = True
    if not timed_out:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
    if timed_out:
        _kill_group(proc)
    proc.stdout.close()
    proc.stderr.close()
    stdout, stderr = (bytes(bufs[fd]).decode("utf-8", "replace") for fd in (out_fd, err_fd))
    return PluginRun(None if timed_out else proc.returncode, stdout, stderr, truncated)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(2)
    except subprocess.TimeoutExpired:  # unkillable (D state): leave the zombie to a later wait
        pass


@register_check("nagios")
class NagiosCheck:
    Config = NagiosConfig
    metrics = metric_defs(
        MetricDef("hostwarden_nagios_perfdata_value", "gauge", "Plugin performance data, in base units.",
                  ("check", "label", "uom")),
        MetricDef("hostwarden_nagios_perfdata_warning", "gauge", "Warning threshold (plain-number form only).",
                  ("check", "label", "uom")),
        MetricDef("hostwarden_nagios_perfdata_critical", "gauge", "Critical threshold (plain-number form only).",
                  ("check", "label", "uom")),
        MetricDef("hostwarden_nagios_perfdata_min", "gauge", "Minimum possible value.", ("check", "label", "uom")),
        MetricDef("hostwarden_nagios_perfdata_max", "gauge", "Maximum possible value.", ("check", "label", "uom")),
    )

    def __init__(self, config: NagiosConfig) -> None:
        self.config = config
        self._running: set[subprocess.Popen] = set()  # plugins in flight, killed by abort() on shutdown

    def environment(self) -> dict[str, str]:
        env = {"PATH": self.config.path, "LANG": "C", "LC_ALL": "C"}
        for name in self.config.env_passthrough:
            if name in os.environ:
                env[name] = os.environ[name]
        env.update(self.config.env)
        return env

    def abort(self) -> None:
        """Shutdown: kill the process group of a plugin still running (it runs in its own session and
        would otherwise outlive the agent)."""
        for proc in list(self._running):
            _kill_group(proc)

    def run(self, deadline: float) -> CheckResult:
        cfg = self.config
        try:
            exe = find_executable(cfg.command[0], cfg.path)
            run = run_plugin([exe, *cfg.command[1:]], self.environment(), deadline, max_output=cfg.max_output_bytes,
                             running=self._running)
        except PluginError as e:
            return CheckResult.failed(str(e), status=Status.UNKNOWN)
        if run.returncode is None:
            return CheckResult.failed(f"plugin timed out after {float(cfg.timeout):g}s (process group killed)",
                                      status=Status.UNKNOWN, details=run.stdout[:DETAILS_CAP])
        return interpret(run, cfg.max_perfdata)


def interpret(run: PluginRun, max_perfdata: int = 100) -> CheckResult:
    """Pure: exit code + output → result with perfdata samples."""
    parsed = parse_output(run.stdout)
    message = parsed.text
    if not run.stdout.strip():
        err = run.stderr.strip().splitlines()
        message = "(no output on stdout)" + (f" stderr: {err[0]}" if err else "")
    rc = run.returncode if run.returncode is not None else Status.UNKNOWN
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = str(-rc)
        status = Status.UNKNOWN
        message = f"plugin killed by signal {name}" + (f": {parsed.text}" if parsed.text else "")
    elif rc in (0, 1, 2, 3):
        status = Status(rc)
    else:
        status, message = Status.UNKNOWN, f"plugin exited with code {rc}" + (f": {message}" if message else "")
    details = parsed.long_text
    if run.truncated:
        details += "\n(output truncated)"
    return CheckResult(ok=status == Status.OK, status=int(status), message=message,
                       samples=perfdata_samples(parsed.perfdata, max_perfdata), details=details[:DETAILS_CAP])


def perfdata_samples(items: list[PerfItem], limit: int) -> list[Sample]:
    out: list[Sample] = []
    seen: set[str] = set()
    for item in items:
        if item.label in seen:
            continue  # a repeated label would make duplicate series
        if len(seen) >= limit:
            break
        seen.add(item.label)
        out.append(sample("hostwarden_nagios_perfdata_value", item.value, label=item.label, uom=item.uom))
        for suffix in ("warning", "critical", "min", "max"):
            v = getattr(item, suffix)
            if v is not None:
                out.append(sample(f"hostwarden_nagios_perfdata_{suffix}", v, label=item.label, uom=item.uom))
    return out
