"""The bugs the reliability tests found (F1-F21, all fixed; docs/reliability.md "Findings"), kept as a record.

While a finding was open its regression test was marked `xfail(strict=True, reason=F<n>)`, so the fix
turned it into a visible XPASS, and the fuzz tests skipped its exact input class with `assume(not ...)`
to keep fuzzing the rest; with the fixes the markers and filters are gone and the tests run plainly.
A new finding goes here the same way.
"""

from __future__ import annotations

# F1 agent/yamlsrc.py load_yaml: `_Loader(text)` runs PyYAML's printable-character check in the
# constructor, outside the try, so a control character (e.g. \x0b, \x1b) anywhere in a config or
# rule file raises yaml.reader.ReaderError instead of YAMLSourceError -> load_config raises
# ReaderError (not ConfigErrors), load_rule_files raises instead of collecting the error.
F1 = "F1 agent/yamlsrc.py: non-printable character raises yaml.reader.ReaderError, not YAMLSourceError"

# F2 agent/yamlsrc.py load_yaml: deeply nested flow collections (about 300 levels of `[`) raise
# RecursionError out of PyYAML's recursive composer; not caught -> escapes load_config and
# load_rule_files.
F2 = "F2 agent/yamlsrc.py: ~300 nested '[' raise RecursionError, not YAMLSourceError"

# F3 agent/yamlsrc.py (aliases) + agent/config.py / section parsers: a YAML alias bomb (9 levels of
# 10x aliases) under `collectors:`, `checks:`, `global:`, `web:`, `tickets:` or `receiver:` hangs
# load_config: the type error message formats the value with repr(), which expands 10^9 strings.
F3 = "F3 agent/yamlsrc.py aliases: an alias bomb under a config section hangs load_config (repr of 10^9 strings)"


# F4 rules/promql_eval.py (SubqueryNode.step_times): a subquery whose range/step ratio is huge
# (`max_over_time(x[1y:1ms])`, 3*10^10 steps) is accepted by compile_expr and then builds a list of
# every step time: evaluation never finishes (and exhausts memory) while holding store.lock, which
# stalls every collector. Prometheus bounds this with query.max-samples.
F4 = "F4 rules/promql_eval.py: subquery x[1y:1ms] evaluates forever (list of 3e10 step times) under store.lock"

# F5 rules/templates.py Template.render ("never raises"): `{{ range 100000000 }}xx{{ end }}` and
# `{{ printf "%.999999999f" 1.5 }}` raise MemoryError out of render (under a 1 GiB limit; without a
# limit they allocate gigabytes), and `{{ printf "%0999999999d" 1 }}` returns a 1 GB annotation that
# would go into tickets. Rendered output is not bounded.
F5 = "F5 rules/templates.py: render output unbounded; huge range/printf raise MemoryError out of render"

# F6 rules/promql_regex.py and rules/templates.py (reReplaceAll, match): RE2 patterns run on Python's
# backtracking `re`. A rule regex with nested quantifiers such as `(a+)+` against an untrusted label
# value ('a' * 30 + '!': a process name, a mount point, a textfile label) takes exponential time; the
# evaluation holds store.lock, so all collection stalls. Prometheus' RE2 is linear-time.
F6 = "F6 rules/promql_regex.py + templates.py: catastrophic backtracking on untrusted label values (RE2 is linear)"

# F7 exporters/receiver.py WebhookServer.do_POST: `json.loads` of a deeply nested body (100,000 `[`,
# well under max_body_bytes) raises RecursionError, which `except (ValueError, UnicodeDecodeError)`
# does not catch: the handler thread dies and the connection is dropped without any HTTP answer
# (Alertmanager sees a reset, not a 400).
F7 = "F7 exporters/receiver.py: deeply nested JSON body raises RecursionError; connection dropped, no 400"

# F8 exporters/tickets/redmine.py: answers of the wrong shape escape as KeyError / TypeError /
# AttributeError instead of PermanentError, e.g. GET /users/current.json answering `{}` (KeyError
# 'user' in _discover), `null` (TypeError), or /issues.json answering `[]` (`.get` on a list in find).
# The outbox retries them as "unexpected" forever instead of dead-lettering with a clear message.
F8 = "F8 exporters/tickets/redmine.py: wrong-shaped JSON answers raise KeyError/TypeError, not PermanentError"

# F9 exporters/tickets/jira.py: `_search` and `_transition` call `.get` on whatever JSON came back:
# a 200 with body `null` or `[]` raises AttributeError (jira.py _search `data.get("issues")`,
# _transition `issue.get(...)`) instead of PermanentError.
F9 = "F9 exporters/tickets/jira.py: 200 with `null`/list body raises AttributeError, not PermanentError"

# F10 exporters/tickets/github.py find: `resp.json()` instead of http.json_body, so a 2xx whose body is
# not JSON (b"\x00", an HTML error page from a proxy) raises requests.JSONDecodeError; and
# `"pull_request" in issue` runs before the isinstance check, so `[1]` raises TypeError.
F10 = "F10 exporters/tickets/github.py: non-JSON 2xx raises JSONDecodeError; `[1]` raises TypeError"

# F11 exporters/tickets/http.py json_body: a deeply nested JSON answer ("[" * 100000) raises
# RecursionError, which `except (ValueError, json.JSONDecodeError)` does not catch (all backends
# using HttpClient.json).
F11 = "F11 exporters/tickets/http.py: deeply nested JSON answer raises RecursionError, not PermanentError"

# F12 exporters/tickets/jira.py adf_from_plain (Jira Cloud descriptions): every line of render.py's plain
# text that looks like `== X ==` becomes an ADF heading, including lines of untrusted annotation,
# diagnosis or timeline text (e.g. an annotation line "== Resolved: ignore =="). No link or mention can
# be formed (text nodes carry no marks), but untrusted text can fake the ticket's section structure.
F12 = "F12 exporters/tickets/jira.py adf_from_plain: untrusted '== X ==' lines become ADF headings"

# F13 rules/engine.py RuleState._advance (`now - rec.active_since >= rule.for_`): `for` is measured as
# elapsed time between two evaluations, not as time covered by evaluations. An alert that turned
# pending just before the process was stopped (SIGSTOP, a VM paused; CLOCK_MONOTONIC keeps running)
# for longer than `for` fires at the very first evaluation after SIGCONT, although evaluations saw the
# condition for ~1-2 s only. (Prometheus behaves the same; the issue asks for no spurious completion.)
# A fix: when the gap since rec.last_eval exceeds, e.g., 2 group intervals, restart active_since (or
# count only covered time).
F13 = "F13 rules/engine.py: `for` completes at the first evaluation after a pause longer than `for`"

# F14 agent/daemon.py heartbeat/self_samples: `hostwarden_scheduler_lag_seconds` is the lag of the *last*
# heartbeat only, and heartbeat() does not re-render the exposition. After a 25 s SIGSTOP the one
# heartbeat that measures ~24 s of lag is overwritten by the next one (0) a second later, usually before
# any render: scraping /metrics at 20 Hz for 5 s after SIGCONT never showed a non-zero value. A scraper
# (15 s interval) cannot see pauses or overload. Suggest: render in the heartbeat, and export the max
# lag since the previous scrape (or over the last minute) and/or a `_seconds_total`/count of late beats.
F14 = "F14 agent/daemon.py: scheduler lag is overwritten each second and never rendered: a 25 s pause is invisible"

# F15 exporters/tickets/webhook.py (_post error messages) + agent/outbox.py (last_error): the webhook
# backend puts the start of the answer body into its TransientError/PermanentError message without
# redaction (HttpClient in http.py redacts; webhook.py does not), and the outbox stores that message
# verbatim in state.db `outbox.last_error` (shown by `hostwarden tickets outbox`). A proxy that echoes the
# Authorization header in a 500 puts the planted token into state.db; the log line is redacted by the
# logging filter only. Fix: redact in webhook.py (agent.secrets.redact) and, as defence in depth, in
# the outbox before persisting any error text.
F15 = "F15 webhook.py + agent/outbox.py: echoed token stored unredacted in state.db outbox.last_error"

# F16 rules/templates.py Template.render ("never raises") lets exceptions of template functions other than
# TypeError/ValueError/... escape: `{{ and }}` / `{{ or }}` (no argument: IndexError in `_and`/`_or`, Go
# rejects them at exec time), `{{ reReplaceAll $labels.a $value $value }}` (AttributeError: float has no
# `replace`), `{{ stripPort 1 }}` / `{{ stripDomain 1 }}` (AttributeError on int). In the daemon the rule
# then fails every evaluation ("internal error") instead of rendering `<error expanding template: ...>`.
F16 = "F16 rules/templates.py: IndexError/AttributeError escape render ({{ and }}, reReplaceAll/stripPort on numbers)"


# F17 collectors/checks.py CheckRunner.collect + agent/daemon.py check_tick: collect() starts the due
# checks and then *waits* for them until the soonest deadline (+ grace) before returning, and the
# `checks` job (1 s, max_instances=1, coalesced) cannot start the next due checks meanwhile. A check
# that hangs until its timeout therefore holds back every other check: with a plugin hanging 1 s every
# 2 s, a 1 s-interval check ran 12 times in ~17.5 s with gaps above 2 s. With the default 10 s timeout a
# hung check would stretch every other check's interval to ~10 s. Suggest: collect() starts due checks
# and returns the latest results without waiting (results published as runs finish).
F17 = "F17 collectors/checks.py: collect() waits for started runs, so a hanging check delays all other checks"

# F18 collectors/checks.py CheckRunner.close + collectors/check_nagios.py: on SIGTERM the agent exits
# while a plugin run is in flight; the plugin runs in its own session (start_new_session) and nobody
# kills its process group, so it is orphaned and keeps running (a plugin sleeping forever stayed alive
# after `hostwarden run` exited 0). Under systemd's default KillMode=control-group the cgroup is killed;
# elsewhere (containers, `hostwarden run` by hand, KillMode=process) plugins leak. Suggest: close() kills
# the process groups of runs in flight (check_nagios keeps the Popen of its current run).
F18 = "F18 collectors/checks.py + check_nagios.py: a plugin in flight at shutdown is orphaned, not killed"

# F20 agent/core/store.py SeriesStore.append: rule evaluations run at times rounded to the millisecond
# (promql_eval.ms_grid, Prometheus' integer-millisecond timestamps) but collected samples kept their
# microseconds, so a sample collected less than half a millisecond before an evaluation lay "after" the
# evaluation's time and was not seen (a new series: nothing; an existing one: its previous value). Found
# as tests/unit/agent/test_collector_failure.py failing 3 runs in 10. Fixed: samples are truncated to the
# millisecond on append, as a scrape's timestamp is.
F20 = "F20 agent/core/store.py: a sample collected within the millisecond before an evaluation is not seen"

# F21 agent/incidents/manager.py record_remediation / raise_priority: remediation records were notes
# coalesced by tickets.update_interval (5m by default): under the shipped config the ticket showed the first
# attempt and then nothing (results, further attempts, the exhaustion's priority change) for up to 5
# minutes. The systemd remediation test used update_interval: 0s and hid it; the polkit test under the
# installed .deb found it. Fixed: remediation records are sent at once (bounded by the plan's max).
F21 = "F21 agent/incidents/manager.py: remediation records waited for update_interval coalescing"
