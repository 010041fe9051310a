"""The part of Prometheus' alert templates (Go text/template) that rule files use.

    t = parse_template("{{ $labels.mountpoint }} is {{ $value | humanizePercentage }} full")
    t.render(TemplateData(labels={"mountpoint": "/"}, value=0.93))  # '/ is 93% full'

Supported: text and `{{ }}` actions with `{{-`/`-}}` trimming and `{{/* comments */}}`; the
variables `$labels`, `$value`, `$externalLabels`, `$externalURL` and the dot forms `.Labels`,
`.Value`, `.ExternalLabels`, `.ExternalURL`; field chains (`$labels.instance`); pipelines
(`$value | humanize`), parenthesised pipelines, variable declarations (`$x := ...`); `if/else if/
else/end`, `with`, `range` (over maps in key order and lists); and the functions below.

`query` (an instant query over the agent's store at the alert's evaluation time, through the
`TemplateData.query` function the rule manager passes) and its companions `first`, `label`, `value`,
`strvalue` and `sortByLabel` work as in Prometheus: `{{ with query "up" }}{{ . | first | value }}{{ end }}`,
`{{ range query "x" | sortByLabel "instance" }}{{ .Labels.instance }}={{ .Value }} {{ end }}`.

Parse errors (unknown function, unclosed action, `{{ end }}` without a block, `graphLink`, ...) are
raised at load time as TemplateError with a 0-based position. Rendering never raises: a failure
renders as Prometheus does, `<error expanding template: ...>`, and is logged once per template.
That includes a function called with the wrong number of arguments (Go's "wrong number of args for
and: want at least 1 got 0"), a string function given a number ("error calling stripPort: wrong type
for value; expected string; got int") and, as a last resort, any unexpected exception inside a
function ("error calling NAME: ...").

Label values are untrusted and a template runs on every evaluation, so rendering is bounded:
- the output of one template (one annotation or label) is at most MAX_OUTPUT_CHARS (65,536)
  characters: execution stops as soon as more has been produced (a `range` is not run to its end)
  and the text is cut there, followed by `<error expanding template: output truncated at 65536
  characters>`;
- a function result (a string built by printf, reReplaceAll, ...) longer than MAX_OUTPUT_CHARS is an
  error, so values cannot grow through variables or nested calls;
- at most MAX_STEPS (10,000) steps run per render (each text, action or block executed and each
  `range` iteration is one step; `range 100000000` stops there), beyond that the template is an error;
- at most MAX_QUERIES (10) `query` calls per render, each returning at most MAX_QUERY_RESULT (10,000)
  elements; the PromQL evaluation itself is bounded by the engine's sample and subquery-step limits;
- a printf width or precision above MAX_PRINTF_WIDTH (1,000) is not applied and Go's marker
  `%!(BADWIDTH)` / `%!(BADPREC)` is written instead (as Go does for a width it cannot use);
- `reReplaceAll` and `match` use RE2 (`rules.promql_regex.compile_re2`), linear in the text like
  Prometheus' Go regexp, so a pattern such as `(a+)+$` cannot backtrack exponentially on a label value.
"""

from __future__ import annotations

import datetime as _dt
import functools
import inspect
import logging
import math
import re
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hostwarden.rules.promql_regex import RE2Regex, compile_re2

log = logging.getLogger(__name__)

MAX_OUTPUT_CHARS = 64 * 1024
"""Most characters one render produces (and the longest string a function may return)."""
MAX_STEPS = 10_000
"""Most execution steps per render: texts, actions and blocks executed, plus `range` iterations."""
MAX_PRINTF_WIDTH = 1_000
"""Largest printf width or precision applied; above it Go's %!(BADWIDTH) / %!(BADPREC) is written."""
MAX_QUERIES = 10
"""Most `query` calls per render (each one is a PromQL evaluation under the store's lock)."""
MAX_QUERY_RESULT = 10_000
"""Most elements a `query` may return; a larger result is an error (nothing larger reaches the template)."""
TRUNCATED_MARKER = f"<error expanding template: output truncated at {MAX_OUTPUT_CHARS} characters>"


class TemplateError(Exception):
    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


class _ExecError(TemplateError):
    """A template error found while rendering; render turns it into `<error expanding template: ...>`."""


class _OutputLimit(Exception):
    """Raised inside render once the output exceeds MAX_OUTPUT_CHARS: stops execution at once."""


class _NoValue:
    """Go's invalid reflect.Value: a missing map key prints as `<no value>`."""

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = _NoValue()


QueryFunc = Callable[[str], Sequence[tuple[Mapping[str, str], float]]]
"""What `query` calls: an instant query at the alert's evaluation time, giving (labels with `__name__`,
value) pairs; it raises (any exception, its message is the template error) when the query fails."""


@dataclass(frozen=True)
class TemplateData:
    labels: Mapping[str, str] = field(default_factory=dict)
    value: float | str = 0.0
    external_labels: Mapping[str, str] = field(default_factory=dict)
    external_url: str = ""
    query: QueryFunc | None = None  # `query` fails ("no query engine") without one


# -- Go number formatting --------------------------------------------------------------------------
def go_float(v: float) -> str:
    """Go's `%v` of a float64: shortest digits, exponent form when the exponent is < -4 or >= 6.

    (strconv.FormatFloat(v, 'g', -1, 64) decides with precision 6 for the shortest form: 1e+06.)
    """
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "-0" if math.copysign(1.0, v) < 0 else "0"
    sign, digits, exp = Decimal(repr(v)).as_tuple()
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    nd = len(ds)
    dp = len(digits) + int(exp)  # decimal point position relative to the digit string
    x = dp - 1
    s = "-" if sign else ""
    if x < -4 or x >= 6:
        mant = ds[0] + ("." + ds[1:] if nd > 1 else "")
        return f"{s}{mant}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if dp <= 0:
        return f"{s}0.{'0' * -dp}{ds}"
    if dp >= nd:
        return f"{s}{ds}{'0' * (dp - nd)}"
    return f"{s}{ds[:dp]}.{ds[dp:]}"


def _go_pct_g(v: float, prec: int = 4) -> str:
    """Go's `%.4g`: like C's except for infinities and NaN."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return f"%.{prec}g" % v


def to_float(x: Any) -> float:
    if isinstance(x, bool):
        raise _ExecError(f"can't convert {go_str(x)} to float")
    if isinstance(x, int | float):
        return float(x)
    if isinstance(x, str):
        try:
            return float(x.strip())
        except ValueError:
            raise _ExecError(f"strconv.ParseFloat: parsing {x!r}: invalid syntax") from None
    raise _ExecError(f"can't convert {go_str(x)} to float")


class _Struct(dict):
    """A Go struct seen by a template: field access on it is strict (a missing field is an error)."""

    go_type = "struct"


class QuerySample(_Struct):
    """One element of a `query` result: Prometheus' `*template.sample` with `.Labels` and `.Value`."""

    go_type = "*template.sample"

    def __init__(self, labels: Mapping[str, str], value: float) -> None:
        super().__init__(Labels=dict(labels), Value=float(value))


def go_str(x: Any) -> str:
    """Go's `%v` for the values templates see."""
    if x is None or x is NO_VALUE:
        return "<no value>"
    if isinstance(x, QuerySample):
        return "&{" + go_str(x["Labels"]) + " " + go_str(x["Value"]) + "}"
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float):
        return go_float(x)
    if isinstance(x, int):
        return str(x)
    if isinstance(x, Mapping):
        return "map[" + " ".join(f"{go_str(k)}:{go_str(v)}" for k, v in sorted(x.items())) + "]"
    if isinstance(x, list | tuple):
        return "[" + " ".join(go_str(v) for v in x) + "]"
    return str(x)


# -- functions -------------------------------------------------------------------------------------
def humanize(x: Any) -> str:
    v = to_float(x)
    if v == 0 or math.isnan(v) or math.isinf(v):
        return _go_pct_g(v)
    prefix = ""
    if abs(v) >= 1:
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(v) < 1000:
                break
            prefix = p
            v /= 1000
        return _go_pct_g(v) + prefix
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix = p
        v *= 1000
    return _go_pct_g(v) + prefix


def humanize1024(x: Any) -> str:
    v = to_float(x)
    if abs(v) <= 1 or math.isnan(v) or math.isinf(v):
        return _go_pct_g(v)
    prefix = ""
    for p in ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"):
        if abs(v) < 1024:
            break
        prefix = p
        v /= 1024
    return _go_pct_g(v) + prefix


def humanize_duration(x: Any) -> str:
    v = to_float(x)
    if math.isnan(v) or math.isinf(v):
        return _go_pct_g(v)
    if v == 0:
        return _go_pct_g(v) + "s"
    if abs(v) >= 1:
        sign = ""
        if v < 0:
            sign, v = "-", -v
        d = int(v)
        seconds, minutes, hours, days = d % 60, (d // 60) % 60, (d // 3600) % 24, d // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_go_pct_g(v)}s"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix = p
        v *= 1000
    return f"{_go_pct_g(v)}{prefix}s"


def humanize_percentage(x: Any) -> str:
    return _go_pct_g(to_float(x) * 100) + "%"


def humanize_timestamp(x: Any) -> str:
    v = to_float(x)
    if math.isnan(v) or math.isinf(v):
        return _go_pct_g(v)
    t = _dt.datetime.fromtimestamp(v, tz=_dt.UTC)
    frac = f"{t.microsecond / 1e6:.9f}".rstrip("0").rstrip(".")[1:] if t.microsecond else ""
    return t.strftime("%Y-%m-%d %H:%M:%S") + frac + " +0000 UTC"


def go_title(s: Any) -> str:
    text = str(s) if not isinstance(s, str) else s
    out, prev_sep = [], True
    for ch in text:
        out.append(ch.upper() if prev_sep else ch)
        prev_sep = not (ch.isalnum() or ch == "_" or ch == "'")
    return "".join(out)


_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:(\.)(\d+|\*)?)?([a-zA-Z%])")
_BAD_WIDTH, _BAD_PREC = "%!(BADWIDTH)", "%!(BADPREC)"


def _int_arg(args: tuple[Any, ...], argi: int) -> tuple[int | None, int]:
    """Go's intFromArg for `*`: the next argument if it is an int (consumed either way when present)."""
    if argi >= len(args):
        return None, argi
    a = args[argi]
    return (a if isinstance(a, int) and not isinstance(a, bool) else None), argi + 1


def _width_or_prec(text: str | None, args: tuple[Any, ...], argi: int) -> tuple[int | None, bool, int]:
    """(value or None, bad, next argi) of a width or precision: a literal, `*` or absent; bounded."""
    if text is None:
        return None, False, argi
    if text == "*":
        n, argi = _int_arg(args, argi)
        if n is None:
            return None, True, argi
    else:
        n = int(text) if len(text) <= 9 else MAX_PRINTF_WIDTH + 1
    return (None, True, argi) if abs(n) > MAX_PRINTF_WIDTH else (n, False, argi)


def go_sprintf(fmt: Any, *args: Any) -> str:
    """Go's fmt.Sprintf for the verbs templates use (%v %s %d %f %e %g %q %x %t %%).

    Widths and precisions (literal or `*`) above MAX_PRINTF_WIDTH are not applied: Go's `%!(BADWIDTH)` /
    `%!(BADPREC)` is written before the value, which is formatted without them.
    """
    if not isinstance(fmt, str):
        raise _ExecError(f"printf: format must be a string, got {go_str(fmt)}")
    out: list[str] = []
    pos, argi = 0, 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, verb = m.group(1), m.group(5)
        if verb == "%":
            out.append("%")
            continue
        width, bad_width, argi = _width_or_prec(m.group(2), args, argi)
        if bad_width:
            out.append(_BAD_WIDTH)
        elif width is not None and width < 0:  # `*` with a negative argument: left-justify
            flags, width = flags.replace("0", "") + "-", -width
        prec, bad_prec, argi = _width_or_prec(m.group(4) if m.group(3) else None, args, argi)
        if m.group(3) and m.group(4) is None:
            prec = 0  # `%.f`: precision 0
        if bad_prec or (prec is not None and prec < 0):
            out.append(_BAD_PREC)
            prec = None
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        a = args[argi]
        argi += 1
        spec = "%" + flags + ("" if width is None else str(width)) + ("" if prec is None else f".{prec}")
        out.append(_format_one(spec, verb, a))
    out.append(fmt[pos:])
    if argi < len(args):
        out.append("%!(EXTRA " + ", ".join(f"{_go_type(a)}={go_str(a)}" for a in args[argi:]) + ")")
    return "".join(out)


def _go_type(a: Any) -> str:
    if a is None or a is NO_VALUE:
        return "<nil>"
    if isinstance(a, bool):
        return "bool"
    if isinstance(a, int):
        return "int"
    if isinstance(a, float):
        return "float64"
    if isinstance(a, str):
        return "string"
    if isinstance(a, _Struct):
        return a.go_type
    if isinstance(a, Mapping):
        return "map[string]string"
    if isinstance(a, list) and all(isinstance(x, QuerySample) for x in a):
        return "template.queryResult"
    return type(a).__name__


def _format_one(spec: str, verb: str, a: Any) -> str:
    bad = f"%!{verb}(<nil>)" if a is None else f"%!{verb}({_go_type(a)}={go_str(a)})"
    if verb == "v":
        s = go_str(a)
        return (spec[1:] and (("%" + spec[1:].replace("#", "") + "s") % s)) or s
    if verb in "fFeEgG":
        if isinstance(a, bool) or not isinstance(a, int | float):
            return bad
        v = float(a)
        if math.isnan(v) or math.isinf(v):
            return go_float(v)
        return (spec + verb) % v
    if verb == "d":
        if isinstance(a, bool) or not isinstance(a, int):
            return bad
        return (spec + "d") % a
    if verb in "xX":
        if isinstance(a, int) and not isinstance(a, bool):
            return (spec + verb) % a
        if isinstance(a, str):
            h = a.encode().hex()
            return h.upper() if verb == "X" else h
        return bad
    if verb == "s":
        if isinstance(a, str):
            return (spec + "s") % a
        return bad
    if verb == "q":
        if isinstance(a, str):
            return '"' + a.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        return bad
    if verb == "t":
        return go_str(a) if isinstance(a, bool) else bad
    return f"%!{verb}({_go_type(a)}={go_str(a)})"


def _go_sprint(args: tuple[Any, ...]) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out: list[str] = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_str(a))
    return "".join(out)


def _want_str(fn: str, v: Any) -> str:
    """Go's argument check for a `string` parameter: no conversion of numbers or maps."""
    if not isinstance(v, str):
        raise _ExecError(f"error calling {fn}: wrong type for value; expected string; got {_go_type(v)}")
    return v


def _strip_port(s: Any) -> str:
    s = _want_str("stripPort", s)
    if s.startswith("["):
        end = s.find("]")
        return s[1:end] if end > 0 else s
    host, sep, _port = s.rpartition(":")
    return host if sep and ":" not in host else s


def _strip_domain(s: Any) -> str:
    s = _want_str("stripDomain", s)
    if s.startswith("["):
        return s
    host, sep, port = s.rpartition(":") if s.count(":") == 1 else (s, "", "")
    short = host.split(".", 1)[0] if host and not re.fullmatch(r"[\d.]+", host) else host
    return short + (sep + port if sep else "")


def _cmp_values(a: Any, b: Any) -> tuple[Any, Any]:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return float(a), float(b)
    if type(a) is not type(b):
        raise _ExecError(f"incompatible types for comparison: {_go_type(a)} and {_go_type(b)}")
    return a, b


def _eq(a: Any, *bs: Any) -> bool:
    if not bs:
        raise _ExecError("missing argument for comparison")
    for b in bs:
        x, y = _cmp_values(a, b)
        if x == y:
            return True
    return False


def _ordered(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def f(a: Any, b: Any) -> bool:
        x, y = _cmp_values(a, b)
        if isinstance(x, bool):
            raise _ExecError("invalid type for comparison")
        return op(x, y)
    return f


def truth(x: Any) -> bool:
    if x is None or x is NO_VALUE:
        return False
    if isinstance(x, bool):
        return x
    if isinstance(x, int | float):
        return x != 0
    if isinstance(x, str | list | tuple | Mapping):
        return len(x) > 0
    return True


def _index(coll: Any, *keys: Any) -> Any:
    for k in keys:
        if isinstance(coll, Mapping):
            coll = coll.get(k, "")
        elif isinstance(coll, list | tuple | str) and isinstance(k, int):
            if not 0 <= k < len(coll):
                raise _ExecError(f"index out of range: {k}")
            coll = coll[k]
        else:
            raise _ExecError(f"can't index item of type {_go_type(coll)}")
    return coll


@functools.lru_cache(maxsize=256)
def _compile_regex(pattern: str) -> tuple[RE2Regex | None, str | None]:
    """(RE2 program, None) or (None, error); a bad pattern is cached too, not recompiled every evaluation."""
    try:
        return compile_re2(pattern), None
    except ValueError as e:  # RegexError: RE2 (Go regexp syntax) rejects the pattern
        return None, f"error parsing regexp: {e}"


def _regex(pattern: str) -> RE2Regex:
    """The RE2 program of a template regex: Go regexp syntax, unanchored, time linear in the text."""
    rx, error = _compile_regex(pattern)
    if rx is None:
        raise _ExecError(error or "error parsing regexp")
    return rx


def _re_replace_all(pattern: Any, repl: Any, text: Any) -> str:
    """Go's Regexp.ReplaceAllString on RE2: `repl` in Go's syntax (`$1`, `${1}`, `$name`, `${name}`, `$$`;
    unknown groups expand to ''; a backslash is literal), an empty match right after a match is not
    replaced. A result longer than MAX_OUTPUT_CHARS is an error, found before it is built."""
    pattern = _want_str("reReplaceAll", pattern)
    repl = _want_str("reReplaceAll", repl)
    text = _want_str("reReplaceAll", text)
    rx = _regex(pattern)
    # at most len(text) + 1 matches, each expanding to at most len(repl) + one text per `$` reference
    bound = len(text) + (len(text) + 1) * (len(repl) + repl.count("$") * len(text))
    if bound > MAX_OUTPUT_CHARS:
        matched = expanded = 0
        for m in rx.finditer(text):  # the matches ReplaceAll replaces (Go's FindAll rule)
            matched += len(m.group(0) or "")
            expanded += len(m.expand(repl))
            if expanded > MAX_OUTPUT_CHARS:  # the result holds every expansion: it can only be longer
                break
        if len(text) - matched + expanded > MAX_OUTPUT_CHARS:
            raise _ExecError(f"error calling reReplaceAll: result exceeds the limit of {MAX_OUTPUT_CHARS} "
                             "characters")
    return rx.sub(repl, text)


def _match(pattern: Any, text: Any) -> bool:
    """Go's regexp.MatchString: whether the (unanchored) pattern matches anywhere in the text."""
    return _regex(_want_str("match", pattern)).search(_want_str("match", text)) is not None


def _parse_duration(s: Any) -> float:
    from hostwarden.agent.core.units import parse_duration

    try:
        return parse_duration(_want_str("parseDuration", s))
    except ValueError as e:
        raise _ExecError(str(e)) from None


def _and(x: Any, *xs: Any) -> Any:
    """The first empty argument or the last one (Go's `and`; at least one argument)."""
    for v in (x, *xs):
        if not truth(v):
            return v
    return xs[-1] if xs else x


def _or(x: Any, *xs: Any) -> Any:
    """The first non-empty argument or the last one (Go's `or`; at least one argument)."""
    for v in (x, *xs):
        if truth(v):
            return v
    return xs[-1] if xs else x


def _len(a: Any) -> int:
    if isinstance(a, str | list | tuple | Mapping):
        return len(a)
    raise _ExecError(f"error calling len: len of type {_go_type(a)}")


def _want_result(fn: str, v: Any) -> list[QuerySample]:
    if not isinstance(v, list) or not all(isinstance(x, QuerySample) for x in v):
        raise _ExecError(f"error calling {fn}: wrong type for value; expected template.queryResult; "
                         f"got {_go_type(v)}")
    return v


def _want_sample(fn: str, v: Any) -> QuerySample:
    if not isinstance(v, QuerySample):
        raise _ExecError(f"error calling {fn}: wrong type for value; expected *template.sample; got {_go_type(v)}")
    return v


def _query_placeholder(q: Any) -> Any:  # `query` needs the render's query function: see Template._call
    raise _ExecError("error calling query: no query engine")


def _external_url_placeholder() -> str:  # `externalURL` and `pathPrefix` read the render's data: see _call
    return ""


def _eval_args(args: tuple[Any, ...]) -> str:
    """Go's evalArgs for the escaper builtins: a single string as it is, anything else fmt.Sprint'ed."""
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return _go_sprint(args)


def _query_escape(s: str) -> str:
    """Go's url.QueryEscape: everything but letters, digits and `-_.~` percent-encoded, space as `+`."""
    return urllib.parse.quote_plus(s, safe="")


def _graph_link(expr: Any) -> str:
    return f"/graph?g0.expr={_query_escape(_want_str('graphLink', expr))}&g0.tab=0"


def _table_link(expr: Any) -> str:
    return f"/graph?g0.expr={_query_escape(_want_str('tableLink', expr))}&g0.tab=1"


_HTML_ESCAPES = {"\0": "\ufffd", '"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _html(*args: Any) -> str:
    return "".join(_HTML_ESCAPES.get(c, c) for c in _eval_args(args))


_JS_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026",
               "=": "\\u003D"}


def _js(*args: Any) -> str:
    """Go's JSEscapeString: quotes and backslashes escaped, `<>&=` and unprintable characters as \\uXXXX."""
    out = []
    for c in _eval_args(args):
        if c in _JS_ESCAPES:
            out.append(_JS_ESCAPES[c])
        elif c.isprintable() or c == " ":
            out.append(c)
        else:
            out.append(f"\\u{ord(c):04X}" if ord(c) < 0x10000 else c)
    return "".join(out)


def _args(*args: Any) -> dict[str, Any]:
    return {f"arg{i}": a for i, a in enumerate(args)}


def _slice(item: Any, *indexes: Any) -> Any:
    """Go's `slice x 1 2`: a substring or a sub-list; out-of-range indexes are an error."""
    if not isinstance(item, str | list | tuple):
        raise _ExecError(f"error calling slice: can't slice item of type {_go_type(item)}")
    if len(indexes) > 3 or (len(indexes) == 3 and isinstance(item, str)):
        raise _ExecError(f"error calling slice: too many slice indexes: {len(indexes)}")
    idx = []
    for i in indexes:
        if isinstance(i, bool) or not isinstance(i, int):
            raise _ExecError(f"error calling slice: cannot index slice/array with type {_go_type(i)}")
        if not 0 <= i <= len(item):
            raise _ExecError(f"error calling slice: index out of range: {i}")
        idx.append(i)
    lo = idx[0] if idx else 0
    hi = idx[1] if len(idx) > 1 else len(item)
    if hi < lo:
        raise _ExecError(f"error calling slice: invalid slice index: {lo} > {hi}")
    return item[lo:hi]


def _call_builtin(fn: Any, *args: Any) -> Any:
    raise _ExecError(f"error calling call: non-function of type {_go_type(fn)}")  # templates hold no functions


def _first(v: Any) -> QuerySample:
    result = _want_result("first", v)
    if not result:
        raise _ExecError("error calling first: first() called on vector with no elements")
    return result[0]


def _label(name: Any, s: Any) -> str:
    return _want_sample("label", s)["Labels"].get(_want_str("label", name), "")


def _value(s: Any) -> float:
    return _want_sample("value", s)["Value"]


def _strvalue(s: Any) -> str:
    return _want_sample("strvalue", s)["Labels"].get("__value__", "")


def _sort_by_label(name: Any, v: Any) -> list[QuerySample]:
    name = _want_str("sortByLabel", name)
    return sorted(_want_result("sortByLabel", v), key=lambda x: x["Labels"].get(name, ""))  # stable, as Go's


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "humanize": humanize,
    "humanize1024": humanize1024,
    "humanizeDuration": humanize_duration,
    "humanizePercentage": humanize_percentage,
    "humanizeTimestamp": humanize_timestamp,
    "printf": go_sprintf,
    "print": lambda *a: _go_sprint(a),
    "title": go_title,
    "toUpper": lambda s: str(s).upper(),
    "toLower": lambda s: str(s).lower(),
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _ordered(lambda a, b: a < b),
    "le": _ordered(lambda a, b: a <= b),
    "gt": _ordered(lambda a, b: a > b),
    "ge": _ordered(lambda a, b: a >= b),
    "and": _and,
    "or": _or,
    "not": lambda a: not truth(a),
    "len": _len,
    "index": _index,
    "reReplaceAll": _re_replace_all,
    "match": _match,
    "stripPort": _strip_port,
    "stripDomain": _strip_domain,
    "parseDuration": _parse_duration,
    "safeHtml": lambda s: s,
    "toTime": lambda x: humanize_timestamp(x),
    "query": _query_placeholder,
    "first": _first,
    "label": _label,
    "value": _value,
    "strvalue": _strvalue,
    "sortByLabel": _sort_by_label,
    "externalURL": _external_url_placeholder,
    "pathPrefix": _external_url_placeholder,
    "graphLink": _graph_link,
    "tableLink": _table_link,
    "args": _args,
    "urlquery": lambda *a: _query_escape(_eval_args(a)),
    "html": _html,
    "js": _js,
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
    "slice": _slice,
    "call": _call_builtin,
}
# Prometheus' console-template function: rejected at load time.
UNSUPPORTED_FUNCTIONS = frozenset({"tmpl"})


# -- AST -------------------------------------------------------------------------------------------
@dataclass
class _Text:
    text: str


@dataclass
class _Operand:
    kind: str  # var | field | dot | lit | ident | pipe
    value: Any
    fields: tuple[str, ...] = ()
    pos: int = 0


@dataclass
class _Command:
    args: list[_Operand]
    pos: int


@dataclass
class _Pipeline:
    decls: list[str]
    cmds: list[_Command]
    pos: int
    assign: bool = False  # `$x = ...` (re-assignment) rather than `$x := ...`


@dataclass
class _Action:
    pipe: _Pipeline


@dataclass
class _Block:
    kind: str  # if | with | range
    pipe: _Pipeline
    body: list[Any]
    else_: list[Any] = field(default_factory=list)


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\\n]|\\.)+')
  | (?P<decl>:=)
  | (?P<assign>=)
  | (?P<num>[-+]?(?:0[xX][0-9a-fA-F_]+|(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))
  | (?P<var>\$[A-Za-z_0-9]*(?:\.[A-Za-z_][A-Za-z_0-9]*)*)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z_0-9]*)+)
  | (?P<dot>\.)
  | (?P<ident>[A-Za-z_][A-Za-z_0-9]*)
  | (?P<pipe>\|)
  | (?P<lp>\()
  | (?P<rp>\))
  | (?P<comma>,)
""", re.VERBOSE)

_GO_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b", "f": "\f",
               "v": "\v", "0": "\0"}


def _unquote(s: str, pos: int) -> str:
    body = s[1:-1]
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            n = body[i + 1]
            if n in _GO_ESCAPES:
                out.append(_GO_ESCAPES[n])
                i += 2
                continue
            if n in "xuU":
                width = {"x": 2, "u": 4, "U": 8}[n]
                digits = body[i + 2:i + 2 + width]
                try:
                    out.append(chr(int(digits, 16)))
                except ValueError:
                    raise TemplateError(f"malformed string escape in {s}", pos) from None
                i += 2 + width
                continue
            raise TemplateError(f"unknown escape sequence \\{n} in {s}", pos)
        out.append(c)
        i += 1
    return "".join(out)


class _Parser:
    def __init__(self, text: str, functions: Mapping[str, Any]) -> None:
        self.text = text
        self.functions = functions

    def parse(self) -> list[Any]:
        items = self._split()
        nodes, _ = self._parse_list(items, 0, top=True)
        return nodes

    # split into text and action items, applying trim markers
    def _split(self) -> list[tuple[str, Any, int]]:
        text = self.text
        items: list[tuple[str, Any, int]] = []
        pos = 0
        trim_next = False
        while True:
            start = text.find("{{", pos)
            chunk = text[pos:] if start < 0 else text[pos:start]
            if trim_next:
                chunk = chunk.lstrip(" \t\r\n")
            if start < 0:
                if chunk:
                    items.append(("text", chunk, pos))
                break
            inner_start = start + 2
            if text.startswith("- ", inner_start) or text.startswith("-\t", inner_start) \
                    or text.startswith("-\n", inner_start):
                chunk = chunk.rstrip(" \t\r\n")
                inner_start += 1
            if chunk:
                items.append(("text", chunk, pos))
            end = self._find_close(inner_start)
            if end < 0:
                raise TemplateError("unclosed action", start)
            inner_end = end
            trim_next = False
            if end - 1 >= inner_start and text[end - 1] == "-" and end - 2 >= inner_start \
                    and text[end - 2] in " \t\r\n":
                inner_end = end - 1
                trim_next = True
            body = text[inner_start:inner_end]
            stripped = body.strip()
            if stripped.startswith("/*"):
                if not stripped.endswith("*/"):
                    raise TemplateError("unclosed comment", start)
            else:
                items.append(("action", body, inner_start))
            pos = end + 2
        return items

    def _find_close(self, i: int) -> int:
        text = self.text
        while i < len(text):
            c = text[i]
            if c == "}" and text.startswith("}}", i):
                return i
            if c in "\"`'":
                j = i + 1
                while j < len(text) and text[j] != c:
                    if text[j] == "\\" and c != "`":
                        j += 1
                    if text[j:j + 1] == "\n" and c != "`":
                        raise TemplateError("unterminated quoted string", i)
                    j += 1
                if j >= len(text):
                    raise TemplateError("unterminated quoted string", i)
                i = j + 1
                continue
            if c == "/" and text.startswith("/*", i):
                e = text.find("*/", i + 2)
                if e < 0:
                    raise TemplateError("unclosed comment", i)
                i = e + 2
                continue
            i += 1
        return -1

    def _parse_list(self, items: list[tuple[str, Any, int]], i: int, *, top: bool
                    ) -> tuple[list[Any], int]:
        nodes: list[Any] = []
        while i < len(items):
            kind, body, pos = items[i]
            if kind == "text":
                nodes.append(_Text(body))
                i += 1
                continue
            tokens = self._tokenize(body, pos)
            if not tokens:
                raise TemplateError("missing value for command", pos)
            first = tokens[0]
            word = first[1] if first[0] == "ident" else None
            if word in ("end", "else"):
                if top:
                    raise TemplateError(f"unexpected {{{{{word}}}}}", first[2])
                return nodes, i
            if word in ("if", "with", "range"):
                block, i = self._parse_block(word, tokens[1:], items, i + 1, pos)
                nodes.append(block)
                continue
            if word in ("define", "template", "block", "break", "continue"):
                raise TemplateError(f"{{{{{word}}}}} is not supported in alert templates", first[2])
            nodes.append(_Action(self._pipeline(tokens, pos)))
            i += 1
        if not top:
            raise TemplateError("unexpected EOF: missing {{end}}", len(self.text))
        return nodes, i

    def _parse_block(self, word: str, tokens: list[tuple[str, Any, int]], items: list[tuple[str, Any, int]],
                     i: int, pos: int) -> tuple[_Block, int]:
        if not tokens:
            raise TemplateError(f"missing value for {word}", pos)
        pipe = self._pipeline(tokens, pos, allow_two_decls=word == "range")
        body, i = self._parse_list(items, i, top=False)
        block = _Block(word, pipe, body)
        _kind, inner, ipos = items[i]
        toks = self._tokenize(inner, ipos)
        if toks[0][1] == "end":
            if len(toks) > 1:
                raise TemplateError("unexpected token after end", toks[1][2])
            return block, i + 1
        # else / else if
        rest = toks[1:]
        if rest and rest[0][0] == "ident" and rest[0][1] in ("if", "with") and word != "range":
            nested, i = self._parse_block(rest[0][1], rest[1:], items, i + 1, ipos)
            block.else_ = [nested]
            return block, i
        if rest:
            raise TemplateError("unexpected token after else", rest[0][2])
        block.else_, i = self._parse_list(items, i + 1, top=False)
        _k, inner2, ipos2 = items[i]
        toks2 = self._tokenize(inner2, ipos2)
        if toks2[0][1] != "end":
            raise TemplateError("expected {{end}}", ipos2)
        return block, i + 1

    def _tokenize(self, body: str, base: int) -> list[tuple[str, Any, int]]:
        out: list[tuple[str, Any, int]] = []
        i = 0
        while i < len(body):
            m = _TOKEN.match(body, i)
            if m is None:
                raise TemplateError(f"unexpected {body[i]!r} in action", base + i)
            kind = m.lastgroup or ""
            if kind == "num" and out and out[-1][0] not in ("pipe", "lp", "decl", "assign", "comma") \
                    and body[i] in "+-" and False:
                pass
            if kind != "ws":
                if kind == "str":
                    out.append(("lit", _unquote(m.group(), base + i), base + i))
                elif kind == "raw":
                    out.append(("lit", m.group()[1:-1], base + i))
                elif kind == "char":
                    out.append(("lit", ord(_unquote('"' + m.group()[1:-1] + '"', base + i)[:1] or "\0"),
                                base + i))
                elif kind == "num":
                    txt = m.group().replace("_", "")
                    try:
                        val: Any = int(txt, 0) if re.fullmatch(r"[-+]?(0[xX][0-9a-fA-F]+|\d+)", txt) else float(txt)
                    except ValueError:
                        raise TemplateError(f"bad number syntax: {txt!r}", base + i) from None
                    out.append(("lit", val, base + i))
                elif kind == "ident" and m.group() in ("true", "false"):
                    out.append(("lit", m.group() == "true", base + i))
                elif kind == "ident" and m.group() == "nil":
                    out.append(("lit", None, base + i))
                else:
                    out.append((kind, m.group(), base + i))
            i = m.end()
        return out

    def _pipeline(self, tokens: list[tuple[str, Any, int]], pos: int, *, allow_two_decls: bool = False
                  ) -> _Pipeline:
        decls: list[str] = []
        assign = False
        # declarations: $x := / $k, $v := / $x =
        if len(tokens) >= 2 and tokens[0][0] == "var" and "." not in tokens[0][1]:
            if tokens[1][0] in ("decl", "assign"):
                decls = [tokens[0][1]]
                assign = tokens[1][0] == "assign"
                tokens = tokens[2:]
            elif allow_two_decls and len(tokens) >= 4 and tokens[1][0] == "comma" and tokens[2][0] == "var" \
                    and tokens[3][0] == "decl":
                decls = [tokens[0][1], tokens[2][1]]
                tokens = tokens[4:]
        if not tokens:
            raise TemplateError("missing value for command", pos)
        cmds: list[_Command] = []
        cur: list[_Operand] = []
        cpos = tokens[0][2]
        i = 0
        while i < len(tokens):
            kind, val, tpos = tokens[i]
            if kind == "pipe":
                if not cur:
                    raise TemplateError("missing command before '|'", tpos)
                cmds.append(_Command(cur, cpos))
                cur = []
                cpos = tokens[i + 1][2] if i + 1 < len(tokens) else tpos
                i += 1
                continue
            if kind == "lp":
                depth, j = 1, i + 1
                while j < len(tokens) and depth:
                    if tokens[j][0] == "lp":
                        depth += 1
                    elif tokens[j][0] == "rp":
                        depth -= 1
                    j += 1
                if depth:
                    raise TemplateError("unclosed left paren", tpos)
                inner = self._pipeline(tokens[i + 1:j - 1], tpos)
                fields: tuple[str, ...] = ()
                if j < len(tokens) and tokens[j][0] == "field" and tokens[j][2] == tokens[j - 1][2] + 1:
                    fields = tuple(tokens[j][1].split(".")[1:])  # Go's chain node: `(query "x" | first).Value`
                    j += 1
                cur.append(_Operand("pipe", inner, fields, tpos))
                i = j
                continue
            if kind == "rp":
                raise TemplateError("unexpected right paren", tpos)
            if kind in ("decl", "assign", "comma"):
                raise TemplateError(f"unexpected {val!r} in command", tpos)
            cur.append(self._operand(kind, val, tpos, first=not cur))
            i += 1
        if not cur:
            raise TemplateError("missing command after '|'", cpos)
        cmds.append(_Command(cur, cpos))
        for c in cmds[1:]:
            if c.args[0].kind != "ident":
                raise TemplateError("non executable command in pipeline stage", c.pos)
        return _Pipeline(decls, cmds, pos, assign)

    def _operand(self, kind: str, val: Any, pos: int, *, first: bool) -> _Operand:
        if kind == "lit":
            return _Operand("lit", val, (), pos)
        if kind == "var":
            name, *fields = val.split(".")
            return _Operand("var", name, tuple(fields), pos)
        if kind == "field":
            return _Operand("field", None, tuple(val.split(".")[1:]), pos)
        if kind == "dot":
            return _Operand("dot", None, (), pos)
        if kind == "ident":
            if val in ("if", "else", "end", "range", "with", "define", "template", "block"):
                raise TemplateError(f"unexpected {val!r} in command", pos)
            if val in UNSUPPORTED_FUNCTIONS:
                raise TemplateError(f"function {val!r} is not supported in hostwarden templates", pos)
            if val not in self.functions:
                raise TemplateError(f'function "{val}" not defined', pos)
            return _Operand("ident", val, (), pos)
        raise TemplateError(f"unexpected {val!r}", pos)


class _Scope:
    def __init__(self, root: Any, variables: dict[str, Any], query: QueryFunc | None = None) -> None:
        self.root = root
        self.vars = [variables]
        self.query = query
        self.queries = 0

    def lookup(self, name: str) -> Any:
        for frame in reversed(self.vars):
            if name in frame:
                return frame[name]
        raise _ExecError(f"undefined variable: {name}")


class _Root(_Struct):
    """The dot: field access on it is strict (a struct in Go), on maps lenient."""

    go_type = "*template.tmplData"


class _Run:
    """The output and budgets of one render."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.size = 0
        self.steps = 0

    def emit(self, s: str) -> None:
        self.out.append(s)
        self.size += len(s)
        if self.size > MAX_OUTPUT_CHARS:
            raise _OutputLimit

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise _ExecError(f"template exceeds {MAX_STEPS} execution steps (actions and range iterations)")


def _arity(fn: Callable[..., Any]) -> tuple[int, bool]:
    """(required positional arguments, variadic) of a template function, for Go's argument-count check."""
    cached = _ARITY.get(fn)
    if cached is None:
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            cached = (0, True)
        else:
            required = sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                           and p.default is p.empty)
            cached = (required, any(p.kind is p.VAR_POSITIONAL for p in params)
                      or any(p.default is not p.empty for p in params))
        _ARITY[fn] = cached
    return cached


_ARITY: dict[Callable[..., Any], tuple[int, bool]] = {}


def _run_query(scope: _Scope, q: Any) -> list[QuerySample]:
    """`query`: an instant query at the alert's evaluation time; bounded by MAX_QUERIES per render and
    MAX_QUERY_RESULT elements (the evaluation itself by the PromQL engine's sample and step limits)."""
    text = _want_str("query", q)
    if scope.query is None:
        raise _ExecError("error calling query: no query engine")
    scope.queries += 1
    if scope.queries > MAX_QUERIES:
        raise _ExecError(f"error calling query: template exceeds {MAX_QUERIES} queries")
    try:
        result = scope.query(text)
    except (RecursionError, MemoryError) as e:
        raise _ExecError(f"error calling query: {type(e).__name__}") from None
    except Exception as e:  # a PromQL error (parse, limits, not a vector) is the template's error
        raise _ExecError(f"error calling query: {e}") from None
    if len(result) > MAX_QUERY_RESULT:
        raise _ExecError(f"error calling query: {len(result)} elements, more than the limit of {MAX_QUERY_RESULT}")
    return [QuerySample(labels, value) for labels, value in result]


def _call(name: str, args: list[Any], scope: _Scope) -> Any:
    """Call template function `name`: Go's argument-count check, then any unexpected exception inside the
    function becomes a template error naming it; a string result is bounded by MAX_OUTPUT_CHARS."""
    fn = FUNCTIONS[name]
    required, variadic = _arity(fn)
    if len(args) < required or (not variadic and len(args) > required):
        want = f"at least {required}" if variadic else str(required)
        raise _ExecError(f"wrong number of args for {name}: want {want} got {len(args)}")
    if name == "query":
        return _run_query(scope, args[0])
    if name in ("externalURL", "pathPrefix"):
        url = str(scope.root.get("ExternalURL", "")) if isinstance(scope.root, Mapping) else ""
        return url if name == "externalURL" else urllib.parse.urlsplit(url).path
    try:
        result = fn(*args)
    except _ExecError:
        raise
    except (RecursionError, MemoryError) as e:
        raise _ExecError(f"error calling {name}: {type(e).__name__}") from None
    except Exception as e:  # last resort: render never raises
        raise _ExecError(f"error calling {name}: {type(e).__name__}: {e}") from None
    if isinstance(result, str) and len(result) > MAX_OUTPUT_CHARS:
        raise _ExecError(f"error calling {name}: result of {len(result)} characters exceeds the limit of "
                         f"{MAX_OUTPUT_CHARS}")
    return result


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, _Struct):
        if name not in obj:
            raise _ExecError(f"can't evaluate field {name} in type {obj.go_type}")
        return obj[name]
    if isinstance(obj, Mapping):
        return obj.get(name, "")  # Prometheus expands with missingkey=zero: a missing label is ""
    if obj is NO_VALUE or obj is None:
        return NO_VALUE
    raise _ExecError(f"can't evaluate field {name} in type {_go_type(obj)}")


class Template:
    """A parsed template; `render` never raises."""

    def __init__(self, text: str, nodes: list[Any]) -> None:
        self.text = text
        self._nodes = nodes
        self._logged: set[str] = set()

    @property
    def is_static(self) -> bool:
        return all(isinstance(n, _Text) for n in self._nodes)

    def render(self, data: TemplateData) -> str:
        """The expanded text; never raises (errors and exceeded limits render as `<error expanding ...>`)."""
        if not self._nodes:
            return ""
        if self.is_static:
            return "".join(n.text for n in self._nodes)
        root = _Root(Labels=dict(data.labels), Value=data.value, ExternalLabels=dict(data.external_labels),
                     ExternalURL=data.external_url)
        scope = _Scope(root, {"$": root, "$labels": root["Labels"], "$value": data.value,
                              "$externalLabels": root["ExternalLabels"], "$externalURL": data.external_url},
                       data.query)
        run = _Run()
        try:
            self._exec(self._nodes, root, scope, run)
        except _OutputLimit:
            self._log_once(f"output truncated at {MAX_OUTPUT_CHARS} characters")
            return "".join(run.out)[:MAX_OUTPUT_CHARS] + TRUNCATED_MARKER
        except (TemplateError, TypeError, ValueError, OverflowError, ZeroDivisionError) as e:
            return self._error(str(e))
        except (RecursionError, MemoryError) as e:
            return self._error(f"{type(e).__name__} while executing the template")
        except Exception as e:  # last resort: render never raises
            return self._error(f"internal error: {type(e).__name__}: {e}")
        return "".join(run.out)

    def literal_queries(self) -> list[str]:
        """The `query` arguments written as string literals (`query "up"`, `"up" | query`), for retention."""
        out: list[str] = []

        def pipe(p: _Pipeline) -> None:
            prev: _Operand | None = None
            for c in p.cmds:
                head = c.args[0]
                if head.kind == "ident" and head.value == "query":
                    arg = c.args[1] if len(c.args) > 1 else prev
                    if arg is not None and arg.kind == "lit" and isinstance(arg.value, str):
                        out.append(arg.value)
                for a in c.args:
                    if a.kind == "pipe":
                        pipe(a.value)
                prev = head if len(c.args) == 1 else None

        def walk(nodes: list[Any]) -> None:
            for n in nodes:
                if isinstance(n, _Action):
                    pipe(n.pipe)
                elif isinstance(n, _Block):
                    pipe(n.pipe)
                    walk(n.body)
                    walk(n.else_)

        walk(self._nodes)
        return out

    def _error(self, msg: str) -> str:
        self._log_once(msg)
        return f"<error expanding template: {msg}>"

    def _log_once(self, msg: str) -> None:
        if msg not in self._logged and len(self._logged) < 20:
            self._logged.add(msg)
            log.warning("template %r: %s", self.text[:80], msg)

    def _exec(self, nodes: list[Any], dot: Any, scope: _Scope, run: _Run) -> None:
        for n in nodes:
            run.step()
            if isinstance(n, _Text):
                run.emit(n.text)
            elif isinstance(n, _Action):
                v = self._pipe(n.pipe, dot, scope)
                if not n.pipe.decls:
                    run.emit(go_str(v))
            else:
                self._block(n, dot, scope, run)

    @staticmethod
    def _range_items(coll: Any) -> Iterator[tuple[Any, Any]]:
        """(key, value) pairs of a range, lazily: `range 100000000` is never materialised."""
        if isinstance(coll, _Struct):
            raise _ExecError(f"range can't iterate over {go_str(coll)}")
        if isinstance(coll, Mapping):
            return iter(sorted(coll.items()))
        if isinstance(coll, list | tuple):
            return enumerate(coll)
        if isinstance(coll, int) and not isinstance(coll, bool):
            return ((i, i) for i in range(coll))
        if coll is None or coll is NO_VALUE:
            return iter(())
        raise _ExecError(f"range can't iterate over {go_str(coll)}")

    def _block(self, b: _Block, dot: Any, scope: _Scope, run: _Run) -> None:
        scope.vars.append({})
        try:
            if b.kind == "range":
                coll = self._pipe(b.pipe, dot, scope, declare=False)
                empty = True
                for k, v in self._range_items(coll):
                    empty = False
                    run.step()
                    frame: dict[str, Any] = {}
                    if len(b.pipe.decls) == 1:
                        frame[b.pipe.decls[0]] = v
                    elif len(b.pipe.decls) == 2:
                        frame[b.pipe.decls[0]], frame[b.pipe.decls[1]] = k, v
                    scope.vars.append(frame)
                    try:
                        self._exec(b.body, v, scope, run)
                    finally:
                        scope.vars.pop()
                if empty:
                    self._exec(b.else_, dot, scope, run)
                return
            v = self._pipe(b.pipe, dot, scope)
            if truth(v):
                self._exec(b.body, v if b.kind == "with" else dot, scope, run)
            else:
                self._exec(b.else_, dot, scope, run)
        finally:
            scope.vars.pop()

    def _pipe(self, p: _Pipeline, dot: Any, scope: _Scope, *, declare: bool = True) -> Any:
        value: Any = NO_VALUE
        piped = False
        for c in p.cmds:
            value = self._command(c, dot, scope, value if piped else None, piped)
            piped = True
        if p.decls and declare:
            if p.assign:
                for frame in reversed(scope.vars):
                    if p.decls[0] in frame:
                        frame[p.decls[0]] = value
                        break
                else:
                    raise _ExecError(f"undefined variable: {p.decls[0]}")
            else:
                scope.vars[-1][p.decls[0]] = value
        return value

    def _command(self, c: _Command, dot: Any, scope: _Scope, prev: Any, piped: bool) -> Any:
        head = c.args[0]
        if head.kind == "ident":
            args = [self._operand(a, dot, scope) for a in c.args[1:]]
            if piped:
                args.append(prev)
            return _call(head.value, args, scope)
        if len(c.args) > 1 or piped:
            raise _ExecError(f"can't give argument to non-function {self._describe(head)}")
        return self._operand(head, dot, scope)

    @staticmethod
    def _describe(o: _Operand) -> str:
        if o.kind == "var":
            return ".".join((o.value, *o.fields))
        if o.kind == "lit":
            return go_str(o.value)
        return "." + ".".join(o.fields)

    def _operand(self, o: _Operand, dot: Any, scope: _Scope) -> Any:
        if o.kind == "lit":
            return o.value
        if o.kind == "ident":
            return _call(o.value, [], scope)
        if o.kind == "pipe":
            v = self._pipe(o.value, dot, scope)
            for f in o.fields:
                v = _field(v, f)
            return v
        if o.kind == "var":
            v = scope.root if o.value == "$" else scope.lookup(o.value)
        elif o.kind == "dot":
            return dot
        else:
            v = dot
        for f in o.fields:
            v = _field(v, f)
        return v


def parse_template(text: str) -> Template:
    """Parse at load time; raises TemplateError(message, position) with a 0-based offset."""
    if "{{" not in text:
        return Template(text, [_Text(text)] if text else [])
    try:
        nodes = _Parser(text, FUNCTIONS).parse()
        # variables must be declared before use: check statically (Go does at parse time)
        _check_vars(nodes, {"$", "$labels", "$value", "$externalLabels", "$externalURL"})
    except RecursionError:
        raise TemplateError("template nested too deeply", 0) from None
    return Template(text, nodes)


def _check_vars(nodes: list[Any], known: set[str]) -> None:
    known = set(known)
    for n in nodes:
        if isinstance(n, _Action):
            _check_pipe(n.pipe, known)
            if n.pipe.decls and not n.pipe.assign:
                known.update(n.pipe.decls)
        elif isinstance(n, _Block):
            _check_pipe(n.pipe, known)
            inner = known | set(n.pipe.decls)
            _check_vars(n.body, inner)
            _check_vars(n.else_, known)


def _check_pipe(p: _Pipeline, known: set[str]) -> None:
    for c in p.cmds:
        for a in c.args:
            if a.kind == "var" and a.value not in known:
                raise TemplateError(f"undefined variable {a.value!r}", a.pos)
            if a.kind == "pipe":
                _check_pipe(a.value, known)
    if p.assign and p.decls and p.decls[0] not in known:
        raise TemplateError(f"undefined variable {p.decls[0]!r}", p.pos)
