"""Matching a dump's keys to the remembered open rows: the compact sort-merge agrees with pandas' hash look-up."""

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from importer.load.temporal import TemporalTable, _compact, _expand, _match_hashed, _match_sorted, open_state

metadata = sa.MetaData()
spec = TemporalTable(sa.Table("t", metadata, sa.Column("PID", sa.Integer, primary_key=True),
                              sa.Column("k", sa.String(20))), key=("k",))
# ASCII keys take the bytes path, others the unicode path; an embedded NUL is kept, a trailing one is not.
keys = st.text(st.sampled_from(["A", "B", "0", "Æ", "ø", "\x00", " "]), min_size=0, max_size=4)


@given(old=st.lists(keys, unique=True, max_size=30), new=st.lists(keys, unique=True, max_size=30))
def test_sort_merge_finds_the_same_positions_as_a_hash_look_up(old: list[str], new: list[str]) -> None:
    expected = _match_hashed(spec, pd.Index(old, dtype=object), pd.Index(new, dtype=object))
    old_compact, new_compact = _compact(pd.Series(old, dtype=object)), _compact(pd.Series(new, dtype=object))
    if old_compact.dtype.kind in "SU" and old_compact.dtype.kind == new_compact.dtype.kind:
        assert _match_sorted(spec, old_compact, new_compact).tolist() == expected.tolist()
    assert _expand(old_compact).tolist() == old  # compacting never loses a key


@given(values=st.lists(keys, unique=True, min_size=1, max_size=30))
def test_the_remembered_state_gives_back_the_exact_keys(values: list[str]) -> None:
    frame = pd.DataFrame({"k": values})
    state = open_state(spec, frame, np.arange(len(values), dtype=np.uint64))
    assert state.key_frame(np.arange(len(values)))["k"].tolist() == values


def test_ascii_keys_are_kept_as_bytes_and_others_as_unicode() -> None:
    assert _compact(pd.Series(["0A1B2", "09YM8"])).dtype == np.dtype("S5")
    assert _compact(pd.Series(["Æ1", "B"])).dtype.kind == "U"
    assert _compact(pd.Series(["a\x00"])).dtype == np.dtype(object)  # numpy would drop the trailing NUL
    assert _compact(pd.Series([1, 2])).dtype == np.dtype(object)


def test_a_key_twice_is_refused_by_either_matcher() -> None:
    old = np.array([b"A", b"B"])
    with pytest.raises(ValueError, match="duplicate"):
        _match_sorted(spec, old, np.array([b"C", b"C"]))  # twice new
    with pytest.raises(ValueError, match="duplicate"):
        _match_sorted(spec, old, np.array([b"A", b"A"]))  # twice the same open row
    with pytest.raises(RuntimeError, match="more than one open row"):
        _match_sorted(spec, np.array([b"A", b"A"]), np.array([b"A"]))
    with pytest.raises(ValueError, match="duplicate"):
        _match_hashed(spec, pd.Index(["A"]), pd.Index(["C", "C"]))
