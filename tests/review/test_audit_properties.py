"""Properties of the log's canonical JSON and event hash (core.review.audit) for any plain JSON value.

The hash must not depend on how a dict happened to be built (key order), must change when any
value in it changes, and the canonical text must read back as the same value.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from core.errors import AmendError
from core.review import audit

leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
)
json_values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)
payloads = st.dictionaries(st.text(max_size=6), json_values, max_size=5)


def _reordered(value, rnd):
    """The same value with every dict's keys inserted in another order."""
    if isinstance(value, dict):
        keys = list(value)
        rnd.shuffle(keys)
        return {k: _reordered(value[k], rnd) for k in keys}
    if isinstance(value, list):
        return [_reordered(v, rnd) for v in value]
    return value


def _paths(value, prefix=()):
    """Every position in ``value`` that holds a leaf (a path of keys and indices)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _paths(v, (*prefix, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _paths(v, (*prefix, i))]
    return [prefix]


def _replaced(value, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _replaced(value[head], rest, new)
    return copy


def _hash(payload, prev="0" * 64):
    return audit.event_hash(prev, 7, "decision", "s1", payload, "2026-01-01T00:00:00.000000+00:00", "ann")


@given(payloads, st.randoms(use_true_random=False))
def test_canonical_json_and_hash_ignore_key_order(payload, rnd):
    other = _reordered(payload, rnd)
    assert audit.canonical_json(other) == audit.canonical_json(payload)
    assert _hash(other) == _hash(payload)


@given(payloads)
def test_canonical_json_reads_back_as_the_same_value_and_is_one_line(payload):
    text = audit.canonical_json(payload)
    assert json.loads(text) == payload and "\n" not in text
    assert audit.canonical_json(json.loads(text)) == text  # a fixed point: verify can re-check stored text


@given(payloads, leaves, st.data())
def test_changing_any_value_changes_the_hash(payload, new, data):
    paths = [p for p in _paths(payload) if p]  # leaves inside the payload
    assume(paths)
    path = data.draw(st.sampled_from(paths), label="path")
    old = payload
    for step in path:
        old = old[step]
    assume(audit.canonical_json(new) != audit.canonical_json(old))  # 1 vs 1.0 vs true are different values
    assert _hash(_replaced(payload, path, new)) != _hash(payload)


@given(payloads, st.text(alphabet="0123456789abcdef", min_size=64, max_size=64))
def test_the_hash_chains_on_the_previous_hash(payload, prev):
    assume(prev != "0" * 64)
    assert _hash(payload, prev) != _hash(payload)


@pytest.mark.parametrize("bad", [math.nan, math.inf, {"x": {1, 2}}, b"bytes"])
def test_values_that_are_not_plain_json_are_refused(bad):
    with pytest.raises(AmendError, match="plain JSON"):
        audit.canonical_json({"value": bad})
