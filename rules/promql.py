"""PromQL over the agent's own recent samples: compile once at rule load, evaluate every cycle.

    compiled = compile_expr('rate(node_cpu_seconds_total{mode!="idle"}[5m]) > 0.9')  # PromQLError
    with store.lock:
        result = compiled.eval(store, now)  # list[Element] | float | str

Parsing is `promql-parser`'s; this module turns its AST into evaluation nodes
(`rules.promql_eval`, `rules.promql_functions`) and rejects, at compile time and with the
character position, everything the engine does not implement (the `@` modifier, `limitk`,
experimental functions, ...). Semantics are Prometheus 3.x's by default; `prometheus_compat=2`
gives Prometheus 2.x's (closed range/lookback boundaries), which is what `promtool` 2.x checks.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import promql_parser
from hostwarden.agent.core.store import SeriesStore
from hostwarden.rules import promql_lexer as lexer
from hostwarden.rules.promql_aggregate import AggregateNode
from hostwarden.rules.promql_eval import (
    ARITHMETIC,
    COMPARISON,
    MAX_SAMPLES,
    MAX_SUBQUERY_STEPS,
    SET_OPERATORS,
    BinaryNode,
    LabelPredicate,
    Matching,
    MatrixNode,
    MatrixSelectorNode,
    Node,
    NumberNode,
    Options,
    StringNode,
    SubqueryNode,
    UnaryMinusNode,
    VectorSelectorNode,
    make_check,
)
from hostwarden.rules.promql_functions import (
    SUPPORTED_FUNCTIONS,
    LabelJoinNode,
    LabelReplaceNode,
    build_call,
    valid_label_name,
)
from hostwarden.rules.promql_regex import compile_regex
from hostwarden.rules.promql_types import (
    NAME_LABEL,
    Element,
    Matrix,
    PromQLError,
    Selector,
    SeriesRange,
    Vector,
    line_column,
    with_name,
)

__all__ = [
    "Compiled",
    "Element",
    "Matrix",
    "PromQLError",
    "Selector",
    "SeriesRange",
    "Vector",
    "compile_expr",
    "instant_query",
    "line_column",
]

log = logging.getLogger(__name__)

ValueType = Literal["vector", "scalar", "string", "matrix"]
# Valid in some Prometheus version but unknown to promql-parser: reported as unsupported, not as a typo.
_OTHER_PROMETHEUS_FUNCTIONS = frozenset({"holt_winters"})
SUPPORTED_AGGREGATIONS = frozenset(
    {"sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group"}
)
# promql_parser's enums compare equal but are not hashable: (value, name) pairs, searched linearly
_MATCH_OPS = ((promql_parser.MatchOp.Equal, "="), (promql_parser.MatchOp.NotEqual, "!="),
              (promql_parser.MatchOp.Re, "=~"), (promql_parser.MatchOp.NotRe, "!~"))
_CARDINALITY = (
    (promql_parser.VectorMatchCardinality.OneToOne, "one-to-one"),
    (promql_parser.VectorMatchCardinality.ManyToOne, "many-to-one"),
    (promql_parser.VectorMatchCardinality.OneToMany, "one-to-many"),
    (promql_parser.VectorMatchCardinality.ManyToMany, "many-to-many"),
)


def _enum(pairs: tuple[tuple[Any, str], ...], value: Any) -> str:
    return next(name for member, name in pairs if value == member)


@dataclass(eq=False)
class Compiled:
    """A compiled expression; `eval` is an instant query at unix time `t` (hold `store.lock`)."""

    text: str
    value_type: ValueType
    selectors: tuple[Selector, ...]
    _root: Node = field(repr=False)
    _internal_error_logged: bool = field(default=False, repr=False)
    options: Options = field(default_factory=Options, repr=False)  # what it was compiled with (template queries)

    def eval(self, store: SeriesStore, t: float) -> Vector | float | str | Matrix:
        try:
            value = self._root.eval(store, t)
        except PromQLError:
            raise
        except Exception as exc:  # an engine bug must fail this rule, not the rule group
            if not self._internal_error_logged:
                self._internal_error_logged = True
                log.error("internal error evaluating %r", self.text, exc_info=True)
            raise PromQLError(f"internal error: {type(exc).__name__}: {exc}") from exc
        if self.value_type == "vector":
            return [Element(with_name(n, lb), v) for n, lb, v in value]
        if self.value_type == "matrix":
            return [SeriesRange(with_name(n, lb), tuple(zip(ts, vs, strict=True))) for n, lb, ts, vs in value]
        return value


def compile_expr(text: str, *, lookback: float = 300.0, prometheus_compat: Literal[2, 3] = 3,
                 subquery_step: float = 60.0, max_samples: int = MAX_SAMPLES,
                 max_subquery_steps: int = MAX_SUBQUERY_STEPS) -> Compiled:
    """Parse and compile `text`; raises PromQLError (with position and feature) for anything unsupported.

    `lookback` is the instant-selector lookback delta (Prometheus' 5 m). `subquery_step` is the step
    of subqueries written without one (`x[1h:]`); Prometheus uses the global evaluation interval.
    Evaluation fails with a PromQLError, before allocating, when a subquery would evaluate more than
    `max_subquery_steps` steps (nested subqueries multiply) or when the samples it holds would exceed
    `max_samples` (Prometheus' query.max-samples).
    """
    try:
        ast = promql_parser.parse(text)
    except ValueError as exc:
        message = str(exc)
        position = lexer.parse_error_position(text, message, _parses)
        m = re.search(r"unknown function with name '([^']+)'", message)
        if m and m.group(1) in _OTHER_PROMETHEUS_FUNCTIONS:
            feature = f"function {m.group(1)!r}"
            raise PromQLError(f"{feature} is not supported", position=position, feature=feature) from None
        raise PromQLError(f"parse error: {message}", position=position) from None
    opts = Options(lookback=lookback, v2=prometheus_compat == 2, subquery_step=subquery_step,
                   max_samples=max_samples, max_subquery_steps=max_subquery_steps)
    compiler = _Compiler(text, opts)
    root = compiler.compile(ast, extra_lookback=0.0)
    return Compiled(text, root.type, compiler.selectors(), root, options=opts)  # type: ignore[arg-type]


def instant_query(text: str, store: SeriesStore, t: float) -> Vector | float | str | Matrix:
    """Compile and evaluate once (tests, ad-hoc queries); rules should compile once and reuse."""
    with store.lock:
        return compile_expr(text).eval(store, t)


def _parses(text: str) -> bool:
    try:
        promql_parser.parse(text)
    except ValueError:
        return False
    return True


def _seconds(d: timedelta | None) -> float:
    return 0.0 if d is None else d.total_seconds()


class _Compiler:
    def __init__(self, text: str, opts: Options) -> None:
        self.text = text
        self.opts = opts
        self._tokens: list[lexer.Token] | None = None
        self._selectors: dict[str | None, float] = {}

    @property
    def tokens(self) -> list[lexer.Token]:
        if self._tokens is None:
            self._tokens = lexer.tokenize(self.text)
        return self._tokens

    def selectors(self) -> tuple[Selector, ...]:
        return tuple(Selector(name, seconds) for name, seconds in self._selectors.items())

    def unsupported(self, feature: str, position: int | None, detail: str = "") -> PromQLError:
        message = f"{feature} is not supported" + (f": {detail}" if detail else "")
        return PromQLError(message, position=position, feature=feature)

    # -- dispatch --------------------------------------------------------------------------------
    def compile(self, node: Any, *, extra_lookback: float) -> Node:
        kind = type(node).__name__
        method = getattr(self, f"_{kind}", None)
        if method is None:
            raise self.unsupported(f"expression type {kind}", None)
        result: Node = method(node, extra_lookback)
        return result

    def _NumberLiteral(self, node: Any, extra: float) -> Node:
        return NumberNode(float(node.val))

    def _StringLiteral(self, node: Any, extra: float) -> Node:
        return StringNode(node.val)

    def _ParenExpr(self, node: Any, extra: float) -> Node:
        return self.compile(node.expr, extra_lookback=extra)

    def _UnaryExpr(self, node: Any, extra: float) -> Node:
        return UnaryMinusNode(self.compile(node.expr, extra_lookback=extra))

    # -- selectors -------------------------------------------------------------------------------
    def _VectorSelector(self, node: Any, extra: float, range_: float = 0.0) -> VectorSelectorNode:
        if node.at is not None:
            raise self.unsupported("@ modifier", lexer.find_op(self.tokens, "@"),
                                   "the sample store only holds recent data; use offset")
        if node.matchers.or_matchers:
            raise self.unsupported("'or' in label matchers", lexer.find_keyword(self.tokens, "or", in_braces=True))
        name: str | None = node.name
        name_checks = []
        equal: list[tuple[str, str]] = []
        others = []
        written: list[tuple[str, str, str]] = []
        for m in node.matchers.matchers:
            op = _enum(_MATCH_OPS, m.op)
            written.append((m.name, op, m.value))
            try:
                check = make_check(op, m.value, v2=self.opts.v2)
            except ValueError as exc:
                raise self.unsupported("regular expression syntax", lexer.find_regex_string(self.tokens, m.value),
                                       f"{m.value!r}: {exc}") from None
            if m.name == NAME_LABEL:
                if op == "=" and name is None:
                    name = m.value
                else:
                    name_checks.append(check)
            elif op == "=" and m.value:
                equal.append((m.name, m.value))
            else:
                others.append((m.name, check))
        offset = _seconds(node.offset)
        predicate = LabelPredicate(equal, others) if equal or others else None
        key = name
        need = max(0.0, range_ + offset + self.opts.lookback + extra)
        self._selectors[key] = max(self._selectors.get(key, 0.0), need)
        return VectorSelectorNode(name, name_checks, predicate, written, offset, self.opts)

    def _MatrixSelector(self, node: Any, extra: float) -> Node:
        range_ = _seconds(node.range)
        selector = self._VectorSelector(node.vector_selector, extra, range_)
        return MatrixSelectorNode(selector, range_)

    def _SubqueryExpr(self, node: Any, extra: float) -> Node:
        if node.at is not None:
            raise self.unsupported("@ modifier", lexer.find_op(self.tokens, "@"),
                                   "the sample store only holds recent data; use offset")
        range_ = _seconds(node.range)
        offset = _seconds(node.offset)
        step = _seconds(node.step) if node.step is not None else self.opts.subquery_step
        inner = self.compile(node.expr, extra_lookback=extra + max(0.0, range_ + offset))
        return SubqueryNode(inner, range_, step, offset, self.opts, " ".join(node.prettify().split()))

    # -- operators -------------------------------------------------------------------------------
    def _BinaryExpr(self, node: Any, extra: float) -> Node:
        op = str(node.op).lower()
        if op not in ARITHMETIC and op not in COMPARISON and op not in SET_OPERATORS:
            raise self.unsupported(f"operator {op!r}", lexer.find_keyword(self.tokens, op))
        lhs = self.compile(node.lhs, extra_lookback=extra)
        rhs = self.compile(node.rhs, extra_lookback=extra)
        return BinaryNode(op, lhs, rhs, self._matching(node.modifier, op), self.opts)

    def _matching(self, modifier: Any, op: str) -> Matching:
        if modifier is None:
            return Matching("many-to-many" if op in SET_OPERATORS else "one-to-one", None)
        fill = modifier.fill_values
        if fill is not None and (fill.lhs is not None or fill.rhs is not None):
            pos = next((p for w in ("fill", "fill_left", "fill_right")
                        if (p := lexer.find_call(self.tokens, w)) is not None), None)
            raise self.unsupported("fill modifier", pos)
        card = _enum(_CARDINALITY, modifier.card)
        on: bool | None = None
        labels: tuple[str, ...] = ()
        if modifier.matching is not None:
            on = modifier.matching.type == promql_parser.LabelModifierType.Include
            labels = tuple(modifier.matching.labels)
        include = tuple(modifier.group_labels or ()) if card in ("many-to-one", "one-to-many") else ()
        return Matching(card, on, labels, include, bool(modifier.return_bool))

    def _AggregateExpr(self, node: Any, extra: float) -> Node:
        op = str(node.op).lower()
        if op not in SUPPORTED_AGGREGATIONS:
            raise self.unsupported(f"aggregation {op!r}", lexer.find_call(self.tokens, op, aggregation=True))
        inner = self.compile(node.expr, extra_lookback=extra)
        param = self.compile(node.param, extra_lookback=extra) if node.param is not None else None
        if (op == "count_values" and isinstance(param, StringNode)
                and not valid_label_name(param.value, v2=self.opts.v2)):
            raise PromQLError(f"invalid label name {param.value!r} in count_values",
                              position=lexer.find_call(self.tokens, op, aggregation=True))
        grouping: tuple[str, ...] | None = None
        without = False
        if node.modifier is not None:
            grouping = tuple(node.modifier.labels)
            without = node.modifier.type == promql_parser.AggModifierType.Without
        return AggregateNode(op, inner, param, grouping, without, self.opts)

    # -- functions -------------------------------------------------------------------------------
    def _Call(self, node: Any, extra: float) -> Node:
        name = node.func.name
        position = lexer.find_call(self.tokens, name)
        if name not in SUPPORTED_FUNCTIONS:
            raise self.unsupported(f"function {name!r}", position)
        raw = list(node.args)
        args = [self.compile(a, extra_lookback=extra) for a in raw]
        plain = [type(a).__name__ in ("VectorSelector", "MatrixSelector") for a in raw]
        if name == "label_replace":
            return self._label_replace(args, position)
        if name == "label_join":
            return self._label_join(args, position)
        node_ = build_call(name, args, self.opts, plain_selector=plain)
        if isinstance(node_, MatrixNode):  # pragma: no cover - functions never return range vectors
            raise self.unsupported(f"function {name!r}", position)
        return node_

    def _strings(self, args: list[Node], name: str, position: int | None) -> list[str]:
        values = []
        for a in args:
            if not isinstance(a, StringNode):
                raise self.unsupported(f"non-literal string argument to {name}", position)
            values.append(a.value)
        return values

    def _label_replace(self, args: list[Node], position: int | None) -> Node:
        dst, replacement, src, regex = self._strings(args[1:], "label_replace", position)
        if not valid_label_name(dst, v2=self.opts.v2):
            raise PromQLError(f"invalid destination label name in label_replace(): {dst}", position=position)
        try:
            pattern = compile_regex(regex, v2=self.opts.v2, alone=False)
        except ValueError as exc:
            raise PromQLError(f"invalid regular expression in label_replace(): {regex} ({exc})",
                              position=position) from None
        return LabelReplaceNode(args[0], dst, replacement, src, pattern)

    def _label_join(self, args: list[Node], position: int | None) -> Node:
        dst, separator, *sources = self._strings(args[1:], "label_join", position)
        for label in (dst, *sources):
            if not valid_label_name(label, v2=self.opts.v2):
                raise PromQLError(f"invalid label name in label_join(): {label!r}", position=position)
        return LabelJoinNode(args[0], dst, separator, sources)
