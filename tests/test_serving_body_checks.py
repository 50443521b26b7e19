"""The body guard's JSON limits: the quick check (``_within``, no paths) accepts exactly
the bodies the walk with paths (``_refuse``) accepts, so ``check_json`` refuses the same
bodies with the same message as before it had a quick check."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparkfs.errors import ValidationError
from sparkfs.serving.middleware import _refuse, _within, check_json


class _Str(str):
    """A ``str`` subclass (not what JSON parsing gives, but ``check_json`` accepts it)."""


_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | \
    st.text(max_size=7) | st.text(max_size=7).map(_Str)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=7), inner,
                                                                 max_size=4),
    max_leaves=30)


def _refused(value, depth, string):
    try:
        _refuse(value, depth, string)
    except ValidationError as exc:
        return str(exc)
    return None


@settings(max_examples=400, deadline=None)
@given(value=_json, depth=st.integers(1, 5), string=st.integers(0, 6))
def test_the_quick_check_accepts_what_the_walk_with_paths_accepts(value, depth, string):
    refused = _refused(value, depth, string)
    assert _within(value, depth, string) == (refused is None)
    if refused is None:
        check_json(value, depth, string)
    else:
        with pytest.raises(ValidationError) as exc:
            check_json(value, depth, string)
        assert str(exc.value) == refused


@pytest.mark.parametrize("value,message", [
    ({"rows": [{"origin": "x" * 9}]}, "rows[0].origin: a string of 9 characters"),
    ({"rows": [{"k" * 9: 1}]}, "rows[0]: a key of 9 characters"),
    ({"a": [[[[1]]]]}, "a[0][0][0]: JSON nested deeper than serving.max_json_depth=4"),
])
def test_a_body_over_a_limit_is_named_by_its_path(value, message):
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_json(value, max_depth=4, max_string=8)
