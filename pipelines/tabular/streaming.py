"""Read and validate input files one record batch at a time (preprocessing in constant memory).

:func:`scan_file` reads a CSV (pyarrow's streaming reader, typed by the contract) or parquet file
(``iter_batches``) batch by batch, validates each batch with :func:`validation.check_table` and hands
every batch that passed to a sink, so no more than one batch of the raw data is in memory at a time.
The failures of all batches of a file are merged into one per check and column (counts added, example
rows numbered within the file), so the report reads as the whole-file validation's would.

A typed CSV read that fails on a value mid-file (a value that does not parse as the column's dtype) is
picked up again as text from the first row not yet seen, which lets :func:`validation.coerce_column`
name the bad rows, exactly as the whole-file reader does; the batches already handed to the sink are
not handed again.
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from contract import DataContract
from validation import (
    _ARROW_TYPES,
    MAX_EXAMPLES,
    PARQUET_SUFFIXES,
    Failure,
    FileResult,
    _csv_options,
    _redact_parser_error,
    check_table,
)

#: CSV bytes per record batch (~90k rows of the churn data); the unit of memory of the step.
BLOCK_SIZE = 8 << 20
#: Rows per record batch of a parquet input.
PARQUET_BATCH_ROWS = 131_072
#: Record batches read ahead by the reader thread (memory: this many batches more than one).
READ_AHEAD = 2
_COUNT = re.compile(r": \d+ row\(s\) ")
_DONE = object()

#: ``sink(raw_batch, coerced_frame)``: called for each batch that passed its checks.
Sink = Callable[[pa.Table, pd.DataFrame], None]


def _tables(path: Path, contract: DataContract, text: bool, block_size: int, batch_rows: int) -> Iterator[pa.Table]:
    if path.name.lower().endswith(PARQUET_SUFFIXES):
        pf = pq.ParquetFile(path)
        empty = True
        for batch in pf.iter_batches(batch_size=batch_rows):
            empty = False
            yield pa.Table.from_batches([batch])
        if empty:
            yield pf.schema_arrow.empty_table()
        return
    read = pacsv.ReadOptions(block_size=block_size)
    names = pacsv.open_csv(path, read_options=read, convert_options=_csv_options({})).schema.names
    typed = {} if text else {c.name: _ARROW_TYPES[c.dtype] for c in contract.columns}
    types = {n: typed.get(n, pa.string()) for n in names}  # unexpected columns: text, never inferred
    reader = pacsv.open_csv(path, read_options=read, convert_options=_csv_options(types))
    empty = True
    for batch in reader:
        empty = False
        yield pa.Table.from_batches([batch])
    if empty:  # a header-only file: one empty batch, so that the header is still checked
        yield reader.schema.empty_table()


def prefetch(items: Iterator[pa.Table], depth: int = READ_AHEAD) -> Iterator[pa.Table]:
    """``items`` produced by a background thread, at most ``depth`` ahead (its exception re-raised here).

    pyarrow parses and decodes without the GIL, so the next batch is read while this one is validated,
    pseudonymized and written.
    """
    slots: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                slots.put(item)
            slots.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            slots.put(exc)

    thread = threading.Thread(target=produce, name="flywheel-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                slots.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def merge_failure(seen: Failure, more: Failure, offset: int) -> Failure:
    """One failure from the same check of two batches of a file (``more`` starts at row ``offset``)."""
    count = seen.failure_count + more.failure_count
    examples = (seen.examples + [i + offset for i in more.examples])[:MAX_EXAMPLES]
    values = None
    if seen.example_values is not None:
        values = (seen.example_values + list(more.example_values or []))[:MAX_EXAMPLES]
    message = _COUNT.sub(f": {count} row(s) ", seen.message, count=1)
    return replace(seen, failure_count=count, examples=examples, example_values=values, message=message)


def scan_file(
    path: Path,
    name: str,
    contract: DataContract,
    sink: Sink | None,
    *,
    block_size: int = BLOCK_SIZE,
    batch_rows: int = PARQUET_BATCH_ROWS,
) -> FileResult:
    """Validate one file batch by batch, handing each batch to ``sink`` until one fails.

    Returns the file's result: merged failures, and as ``frame`` a column-less frame of the file's row
    count (``None`` when the file is unreadable or has no header row), so that
    :class:`validation.ValidationResult` counts rows as for a whole-file read.
    """
    merged: dict[tuple[str, str | None], Failure] = {}
    rows = 0  # rows validated (and handed on) so far
    text = False
    tables = prefetch(_tables(path, contract, text, block_size, batch_rows))
    position = 0  # rows of the current pass's reader consumed
    while True:
        try:
            table = next(tables, None)
        except (pa.ArrowException, OSError, ValueError) as exc:
            if text or path.name.lower().endswith(PARQUET_SUFFIXES):
                msg = f"file cannot be read: {_redact_parser_error(exc)}"
                return FileResult(path, name, None, [Failure("readable", None, 1, msg, name)])
            # A value that does not parse as its dtype: read on as text from the first row not yet seen.
            text, position = True, 0
            tables = prefetch(_tables(path, contract, text, block_size, batch_rows))
            continue
        if table is None:
            break
        if position < rows:  # a text re-read: skip what the typed pass already validated
            skip = min(rows - position, table.num_rows)
            position += skip
            if skip == table.num_rows and table.num_rows:
                continue
            table = table.slice(skip)
        result = check_table(table, path, name, contract)
        if result.frame is None:  # no header row: a file-level failure, nothing to merge
            return FileResult(path, name, None, result.failures)
        for f in result.failures:
            key = (f.check, f.column)
            if key in merged:
                merged[key] = merge_failure(merged[key], f, rows)
            else:
                merged[key] = replace(f, examples=[i + rows for i in f.examples])
        if not merged and sink is not None:  # after a failure in this file, validate on but hand nothing on
            sink(table, result.frame)
        rows += table.num_rows
        position += table.num_rows
    return FileResult(path, name, pd.DataFrame(index=pd.RangeIndex(rows)), list(merged.values()))
