"""The wake trigger's CloudWatch SEARCH, read by the rules of the CloudWatch user guide.

"CloudWatch search expression syntax" (search-expression-syntax.html): quoting of the schema,
exact and partial terms, escapes, and how CloudWatch splits names into tokens. A malformed
expression is a scaler error on every poll, and a term that matches another ALB wakes this
stack on someone else's traffic; neither shows under mocks.
"""

from __future__ import annotations

import functools
import re

import pytest

from components.scaling import policy as scaling
from components.serving import endpoint
from ops.offline.engine import render

SCALED_STACKS = ("dev", "staging")
EXPRESSION = re.compile(r"SUM\(SEARCH\('(?P<query>(?:[^'\\]|\\.)*)', '(?P<stat>[A-Za-z0-9.]+)', (?P<period>\d+)\)\)")
SCHEMA = re.compile(r"\s*\{(?P<names>[^}]*)\}")
TERM = re.compile(r'\s*(?:(?P<prop>[A-Za-z]+)=)?(?:"(?P<exact>(?:[^"\\]|\\.)*)"|(?P<partial>[^\s"()]+))')


def parse(expression: str) -> tuple[list[str], list[tuple[str | None, str, bool]]]:
    """(schema names, terms as (property, value, exact)); AssertionError where the guide's rules are broken."""
    m = EXPRESSION.fullmatch(expression)
    assert m, f"not SUM(SEARCH('<schema> <terms>', '<statistic>', <period>)): {expression}"
    query = m["query"]
    schema = SCHEMA.match(query)
    names = []
    if schema:
        for raw in (n.strip() for n in schema["names"].split(",")):
            quoted = re.fullmatch(r'"([^"]+)"', raw)
            # "unless a namespace or dimension name includes spaces or non-alphanumeric characters.
            # In that case, you must enclose the name that contains those characters with double quotes"
            assert quoted or re.fullmatch(r"[A-Za-z0-9]+", raw), f"schema name {raw} must be double-quoted"
            names.append(quoted.group(1) if quoted else raw)
        query = query[schema.end() :]
    terms, pos = [], 0
    while query[pos:].strip():
        t = TERM.match(query, pos)
        assert t and t.end() > pos, f"cannot read a search term at {query[pos:]!r}"
        if t["exact"] is not None:
            # Inside an exact match, `" \ ( )` must be escaped with a backslash.
            assert not re.search(r"(?<!\\)[()]", t["exact"]), t["exact"]
            terms.append((t["prop"], re.sub(r"\\(.)", r"\1", t["exact"]), True))
        else:
            terms.append((t["prop"], t["partial"], False))
        pos = t.end()
    return names, terms


def tokens(text: str) -> list[str]:
    """CloudWatch's tokens of a name, in order: non-alphanumeric runs delimit, a capital after a
    lower-case letter and a digit after a letter start a token (section "Tokenization")."""
    found = []
    for word in re.findall(r"[A-Za-z0-9]+", text):
        found += re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+", word)
    return found


def finds(term: str, exact: bool, value: str) -> bool:
    """An exact term matches the whole value; a partial one when its tokens appear consecutively in
    the value's (a composite token, section "Partial matches")."""
    if exact:
        return term == value
    want, have = tokens(term), tokens(value)
    return any(have[i : i + len(want)] == want for i in range(len(have) - len(want) + 1))


def test_tokens_follow_the_guides_examples():
    assert tokens("CustomCount1") == ["Custom", "Count", "1"]
    assert tokens("Project2-trial333") == ["Project", "2", "trial", "333"]
    assert tokens("Network-Errors_2") == ["Network", "Errors", "2"]


@functools.cache
def wake_expression(stack: str) -> str:
    (scaled,) = [o.inputs for o in render(stack).kubernetes_objects() if o.inputs["kind"] == "ScaledObject"]
    (wake,) = [t for t in scaled["spec"]["triggers"] if t["type"] == "aws-cloudwatch"]
    return wake["metadata"]["expression"]


@pytest.mark.parametrize("stack", SCALED_STACKS)
def test_the_rendered_wake_search_is_well_formed_and_finds_only_this_stacks_alb(stack):
    expression = wake_expression(stack)
    names, terms = parse(expression)
    assert names == ["AWS/ApplicationELB", "LoadBalancer"]
    assert ("MetricName", scaling.WAKE_METRIC, True) in terms
    ((_, alb_term, exact),) = [t for t in terms if t[0] == "LoadBalancer"]
    mine = endpoint.load_balancer_name(f"minimax-vllm-{stack}")
    # The dimension value CloudWatch reports for an ALB: app/<name>/<16 hex digits>, the id
    # assigned when the controller creates it.
    assert finds(alb_term, exact, f"app/{mine}/50dc6c495c0c9188")
    for other in SCALED_STACKS:
        theirs = endpoint.load_balancer_name(f"minimax-vllm-{other}")
        assert other == stack or not finds(alb_term, exact, f"app/{theirs}/50dc6c495c0c9188")
    near = mine[:-1] + ("1" if mine[-1] == "0" else "0")  # one hex digit apart
    assert not finds(alb_term, exact, f"app/{near}/50dc6c495c0c9188")


def test_the_old_unquoted_namespace_breaks_the_schema_rule():
    old = scaling.wake_expression("x").replace('"AWS/ApplicationELB"', "AWS/ApplicationELB")
    with pytest.raises(AssertionError, match="must be double-quoted"):
        parse(old)
