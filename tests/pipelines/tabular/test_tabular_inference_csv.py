"""The pyarrow CSV path of ``inference.input_fn`` parses a batch exactly as the ``csv`` module path does.

GIVEN CSV request bodies large enough for the pyarrow path (quotes, quoted commas and newlines, blank
lines, empty and whitespace-only fields, Unicode spaces), WHEN ``input_fn`` parses them, THEN the frame
holds the ``csv`` module's values (as Arrow strings: compared as objects, ``None`` for missing);
malformed bodies (ragged rows, invalid UTF-8, a byte-order mark, CR line ends) are left to the ``csv``
path and raise its errors.
"""

from __future__ import annotations

import csv
import io

import inference
import pandas as pd
import pytest


def _csv_module(body: bytes) -> pd.DataFrame:
    text = body.decode("utf-8")
    rows = [[None if v.strip() == "" else v.strip() for v in row] for row in csv.reader(io.StringIO(text)) if row]
    return inference._positional(rows)


def _objects(frame: pd.DataFrame) -> pd.DataFrame:
    """The Arrow path's frame as the csv path's: object columns, ``None`` for missing."""
    assert all(isinstance(d, pd.ArrowDtype) for d in frame.dtypes)  # the strings stayed in Arrow
    return pd.DataFrame({c: frame[c].to_numpy(dtype=object, na_value=None) for c in frame.columns}, dtype=object)


def _body(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


ROWS = [
    ["30-39", "941", "2024", " 12 ", "month_to_month", ""],
    ["90+", "022", "", "7", "a, quoted comma", "  "],
    ["", "x\ny", "2020", "1.50", "\u3000ideographic\u00a0", '"quoted"'],
    ["0-9", "007", "1999", "-3", "Zoë", "tab\tinside"],
]


@pytest.mark.parametrize("copies", [60, 200])
def test_arrow_path_equals_the_csv_module_path(copies: int) -> None:
    body = _body(ROWS * copies)
    assert len(body) >= inference.ARROW_CSV_BYTES
    assert inference._arrow_csv(body) is not None  # the fast path was taken
    got = _objects(inference.input_fn(body, "text/csv"))
    pd.testing.assert_frame_equal(got, _csv_module(body))
    assert got.iloc[0, 5] is None and got.iloc[1, 5] is None
    spaced = body.replace(b"\n", b"\n\n", 10)  # blank lines are skipped by both
    pd.testing.assert_frame_equal(_objects(inference.input_fn(spaced, "text/csv")), _csv_module(spaced))


@pytest.mark.parametrize(
    ("tail", "error"),
    [
        (b"a,b\n", "row 240 has 2 values"),  # ragged
        (b"\xff\xfe,x,x,x,x,x\n", "utf-8"),  # invalid UTF-8
    ],
)
@pytest.mark.parametrize("rows", [ROWS, [[*r[:4], "plain", "x"] for r in ROWS[::3]]], ids=["quoted", "no-quote"])
def test_malformed_batches_get_the_csv_module_errors(tail: bytes, error: str, rows: list[list[str]]) -> None:
    """Also without a '"' anywhere: then the reader skips quote handling, and UTF-8 is checked only if ASCII."""
    body = _body(rows * (240 // len(rows))) + tail  # 240 rows either way
    assert (b'"' in body) is (rows is ROWS)
    assert inference._arrow_csv(body) is None
    with pytest.raises(ValueError, match=error):
        inference.input_fn(body, "text/csv")


def test_bodies_the_paths_could_read_differently_go_to_the_csv_module() -> None:
    body = _body(ROWS * 60)
    for odd in (b"\xef\xbb\xbf" + body, body.replace(b"\n", b"\r\n")):
        assert inference._arrow_csv(odd) is None
        pd.testing.assert_frame_equal(inference.input_fn(odd, "text/csv"), _csv_module(odd))


PLAIN = [
    ["30-39", "941", "2024", "12", "month_to_month", ""],
    ["", "022", "", "7.5", "two_year", "x"],
    ["90+", "", "1999", "-3", "", ""],
]


@pytest.mark.parametrize("parallel", [False, True], ids=["small", "batch"])
@pytest.mark.parametrize("odd", [b"", b" ", b"\t", b"\x0b", b"\x0c", b"\x1c", b"\x1f", b'"q"', "\u00a0".encode()])
def test_plain_bodies_skip_trimming_and_still_equal_the_csv_module_path(
    odd: bytes, parallel: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body without whitespace or quotes (the usual batch) is read without the trim pass; any
    whitespace byte, quote or non-ASCII text anywhere brings the trim back, with the same frame. A batch
    body is parsed while the whitespace is looked for, and parsed again with the trim when there is some."""
    if parallel:
        monkeypatch.setattr(inference, "PARALLEL_PARSE_BYTES", 1000)
    body = _body(PLAIN * 100)
    assert (len(body) >= inference.PARALLEL_PARSE_BYTES) == parallel
    body = body[:-1] + odd + b"\n"  # the last field of the last row
    assert inference._arrow_csv(body) is not None
    got = _objects(inference.input_fn(body, "text/csv"))
    pd.testing.assert_frame_equal(got, _csv_module(body))
    assert got.iloc[0, 5] is None and got.iloc[1, 0] is None and got.iloc[2, 4] is None


def test_a_pandas_without_arrow_columns_gets_the_csv_module_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where pandas cannot hold Arrow columns (before 1.5), the pyarrow parse still serves the batch,
    as the object frame of the csv path (dtype object, ``None`` for missing)."""
    monkeypatch.setattr(inference, "_ARROW_DTYPE", False)
    body = _body(ROWS * 60)
    assert inference._arrow_csv(body) is not None
    pd.testing.assert_frame_equal(inference.input_fn(body, "text/csv"), _csv_module(body))


def test_a_large_body_parsed_on_all_cores_equals_the_csv_module_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """From PARALLEL_PARSE_BYTES on, pyarrow parses with threads (blocks in parallel): the same frame."""
    import pyarrow.csv as pacsv

    seen: list[bool] = []
    real = pacsv.ReadOptions

    def spy(**kwargs: object) -> pacsv.ReadOptions:
        seen.append(bool(kwargs.get("use_threads")))
        return real(**kwargs, block_size=4096)  # small blocks: many of them, parsed on threads

    monkeypatch.setattr(pacsv, "ReadOptions", spy)
    monkeypatch.setattr(inference, "PARALLEL_PARSE_BYTES", 100_000)
    body = _body(ROWS * 1000)
    assert len(body) >= inference.PARALLEL_PARSE_BYTES
    pd.testing.assert_frame_equal(_objects(inference.input_fn(body, "text/csv")), _csv_module(body))
    small = _body(ROWS * 60)
    pd.testing.assert_frame_equal(_objects(inference.input_fn(small, "text/csv")), _csv_module(small))
    assert seen == [True, False]
