"""The `query` function of alert templates: an instant query over the agent's own store.

    data = TemplateData(labels=..., value=..., query=query_function(store, now, rule.compiled.options))

Prometheus evaluates a template's `query` with the rule manager's engine at the alert's evaluation
time; here it is the same PromQL engine as the rules, with the same options (lookback, Prometheus 2.x
boundaries for `test-rules --promql-compat 2`, the default subquery step, the sample and step limits),
at the evaluation time passed in. Queries are compiled once (an LRU cache: query text may be built
from label values) and, within one rule evaluation, the same query text is evaluated once.
A scalar result is a one-element vector without labels; a string or range vector is an error, as in
Prometheus' `EngineQueryFunc` ("rule result is not a vector or scalar").

Only metrics some loaded rule reads are kept in the store: `RuleManager.retention` adds the selectors
of queries written as string literals (`query "up"`); a query built at render time (`printf`) sees the
metrics the rules or literal queries keep.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence

from hostwarden.agent.core.store import SeriesStore
from hostwarden.rules.promql import Compiled, Element, PromQLError, compile_expr
from hostwarden.rules.promql_eval import Options

QUERY_CACHE_SIZE = 256


@functools.lru_cache(maxsize=QUERY_CACHE_SIZE)
def compile_query(text: str, options: Options) -> Compiled:
    """Compile a template query with `options` (cached; a PromQLError is raised again on each call)."""
    return compile_expr(text, lookback=options.lookback, prometheus_compat=2 if options.v2 else 3,
                        subquery_step=options.subquery_step, max_samples=options.max_samples,
                        max_subquery_steps=options.max_subquery_steps)


def query_function(store: SeriesStore, now: float, options: Options
                   ) -> Callable[[str], Sequence[tuple[Mapping[str, str], float]]]:
    """A `TemplateData.query` evaluating at `now` (call it with `store.lock` held, as rule evaluation does)."""
    memo: dict[str, list[tuple[dict[str, str], float]] | PromQLError] = {}

    def query(text: str) -> Sequence[tuple[Mapping[str, str], float]]:
        got = memo.get(text)
        if got is None:
            try:
                got = _evaluate(compile_query(text, options), store, now)
            except PromQLError as e:
                got = e
            memo[text] = got
        if isinstance(got, PromQLError):
            raise got
        return got

    return query


def _evaluate(compiled: Compiled, store: SeriesStore, now: float) -> list[tuple[dict[str, str], float]]:
    result = compiled.eval(store, now)
    if isinstance(result, bool) or not isinstance(result, list | float | int):
        raise PromQLError("rule result is not a vector or scalar")
    if isinstance(result, float | int):
        return [({}, float(result))]
    if not all(isinstance(el, Element) for el in result):
        raise PromQLError("rule result is not a vector or scalar")
    return [(dict(el.labels), el.value) for el in result]
