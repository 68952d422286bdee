"""Readers for the input formats (csv, tsv, jsonl, txt, conllu) that turn a file into text records.

Each reader streams one file and yields `{column: str}` dicts holding the text column (and the
label column when configured); a tagging run's records hold the token list and the tag list
(`{column: list[str]}`: CoNLL-U, `components.data.conllu`, or JSONL lists). Anything that
cannot be read raises `InputDataError` with a one-paragraph message naming the file, the line
and the problem, so the CLI can show it as is.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from typing import Iterator, Optional, Union

import tensorflow as tf

from components.data.conllu import ConlluError, read_sentences

csv.field_size_limit(2**31 - 1)  # a review or a document can be long; the default is 128 KiB
Record = dict[str, Union[str, list[str]]]  # column -> text, or (tagging) a token or tag list


class InputDataError(ValueError):
    """Input data that cannot be used; the message names the file, the line and the problem."""


@dataclasses.dataclass(frozen=True)
class ReaderOptions:
    """How to read the input files (a projection of the `data:` config section)."""

    format: str  # csv | tsv | jsonl | txt | conllu
    text_column: Union[str, list[str]]  # several: a seq2seq source made of columns
    label_column: Optional[str] = None
    target_column: Optional[str] = None  # a seq2seq target
    tag_column: Optional[str] = None  # a tagger's tags, one per token (CoNLL-U: a field or a MISC key)
    txt_mode: str = "lines"  # txt only: lines | windows
    window_chars: int = 256  # txt windows: characters per example

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ReaderOptions":
        return cls(**json.loads(text))

    @property
    def columns(self) -> list[str]:
        texts = [self.text_column] if isinstance(self.text_column, str) else list(self.text_column)
        return texts + [c for c in (self.label_column, self.target_column, self.tag_column) if c]


def read_records(path: str, options: ReaderOptions) -> Iterator[Record]:
    """Yields the records of one file; raises InputDataError on the first bad one."""
    reader = {"csv": _read_delimited, "tsv": _read_delimited, "jsonl": _read_jsonl, "txt": _read_txt,
              "conllu": _read_conllu}
    if options.format not in reader:
        raise InputDataError(f"{path}: unknown input format {options.format!r} (use {', '.join(reader)})")
    found = False
    for record in reader[options.format](path, options):
        found = True
        yield record
    if not found:
        raise InputDataError(f"{path}: the file holds no examples (it is empty{_empty_hint(options)}).")


def count_records(paths: list[str], options: ReaderOptions) -> int:
    """Reads every file through once, so bad input fails before any work is written."""
    if not paths:
        raise InputDataError("no input file matched the configured data path.")
    return sum(sum(1 for _ in read_records(path, options)) for path in paths)


def _empty_hint(options: ReaderOptions) -> str:
    return " or has only a header" if options.format in ("csv", "tsv") else " or has only blank lines"


def _decoded_lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number, line with its newline) pairs, decoded as strict UTF-8."""
    if tf.io.gfile.isdir(path):
        raise InputDataError(f"{path}: is a folder; give a file, or a glob such as {path.rstrip('/')}/*.csv.")
    try:
        handle = tf.io.gfile.GFile(path, "rb")
        with handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise InputDataError(
                        f"{path}, line {number}: bytes that are not UTF-8 (byte 0x{raw[err.start]:02x} at "
                        f"column {err.start + 1}). Save the file as UTF-8 and run again."
                    ) from None
                if number == 1:
                    line = line.removeprefix("\ufeff")  # a byte-order mark is not text
                yield number, line
    except tf.errors.NotFoundError:
        raise InputDataError(f"{path}: no such file.") from None
    except tf.errors.OpError as err:
        raise InputDataError(f"{path}: cannot be read ({err.message}).") from None


def _read_delimited(path: str, options: ReaderOptions) -> Iterator[dict[str, str]]:
    """CSV (RFC 4180 quoting, multi-line fields) or TSV (no quoting), with a header row."""
    lines = _decoded_lines(path)
    line_numbers: list[int] = []

    def text_lines() -> Iterator[str]:
        for number, line in lines:
            line_numbers.append(number)
            yield line

    if options.format == "tsv":
        rows = csv.reader(text_lines(), delimiter="\t", quoting=csv.QUOTE_NONE, strict=True)
    else:
        rows = csv.reader(text_lines(), strict=True)
    try:
        header = next(rows, None)
        if header is None:
            return
        header = [name.strip() for name in header]
        missing = [c for c in options.columns if c not in header]
        if missing:
            raise InputDataError(
                f"{path}: the header has no column {', '.join(repr(c) for c in missing)} "
                f"(it has {', '.join(repr(h) for h in header)}). Set --text-column/--label-column/--target-column "
                f"or data.text_column/data.label_column/data.target_column to one of these."
            )
        index = {c: header.index(c) for c in options.columns}
        for row in rows:
            if not row or row == [""]:
                continue  # blank line
            if len(row) != len(header):
                raise InputDataError(
                    f"{path}, line {line_numbers[-1]}: malformed row with {len(row)} field(s) where the "
                    f"header has {len(header)}. Check the quoting and the delimiter"
                    f"{' (TSV fields may not contain tabs)' if options.format == 'tsv' else ''}."
                )
            yield _checked_label({c: row[i] for c, i in index.items()}, path, line_numbers[-1], options)
    except csv.Error as err:
        line = line_numbers[-1] if line_numbers else 1
        raise InputDataError(f"{path}, line {line}: malformed {options.format.upper()} ({err}).") from None


def _read_jsonl(path: str, options: ReaderOptions) -> Iterator[Record]:
    """One JSON object per line; text and label fields may be strings or numbers; a tagging run's
    text and tag fields are lists of strings of one length."""
    for number, line in _decoded_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputDataError(f"{path}, line {number}: malformed JSON ({err.msg} at column {err.colno}).") from None
        if not isinstance(obj, dict):
            raise InputDataError(f"{path}, line {number}: expected a JSON object, got {type(obj).__name__}.")
        record = {}
        for column in options.columns:
            value = obj.get(column)
            if value is None:
                raise InputDataError(
                    f"{path}, line {number}: no field {column!r} (the object has {', '.join(map(repr, obj)) or 'no fields'})."
                )
            if column == options.target_column and not isinstance(value, str):
                raise InputDataError(f"{path}, line {number}: the target field {column!r} must be a string (the text "
                                     f"to produce), got {json.dumps(value)}.")
            if options.tag_column and column in (options.text_column, options.tag_column):
                record[column] = _string_list(value, column, f"{path}, line {number}")
                continue
            if isinstance(value, (dict, list)):
                raise InputDataError(f"{path}, line {number}: field {column!r} must be a string or a number.")
            record[column] = value if isinstance(value, str) else json.dumps(value)
        if options.tag_column:
            _check_tagged(record, options, f"{path}, line {number}")
        yield _checked_label(record, path, number, options)


def _string_list(value: object, column: str, where: str) -> list[str]:
    """A tagging field: a non-empty list of non-empty strings."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputDataError(f"{where}: field {column!r} must be a list of strings (one per token), got "
                             f"{json.dumps(value)[:80]}.")
    if not value or not all(v.strip() for v in value):
        raise InputDataError(f"{where}: field {column!r} holds {'no tokens' if not value else 'an empty string'}.")
    return value


def _check_tagged(record: Record, options: ReaderOptions, where: str) -> None:
    """A sentence whose token and tag counts differ cannot be tagged word by word."""
    tokens, tags = record[options.text_column], record[options.tag_column]
    if len(tokens) != len(tags):
        raise InputDataError(f"{where}: {len(tokens)} tokens in {options.text_column!r} but {len(tags)} tags in "
                             f"{options.tag_column!r}; each token needs exactly one tag.")


def _read_conllu(path: str, options: ReaderOptions) -> Iterator[Record]:
    """CoNLL-U: one record per sentence, its words and their tags (`components.data.conllu`)."""
    if not options.tag_column:
        raise InputDataError(f"{path}: reading CoNLL-U needs the tag column (--tag-column upos, xpos, deprel or a MISC key).")
    try:
        yield from read_sentences(_decoded_lines(path), path, options.tag_column)
    except ConlluError as err:
        raise InputDataError(f"{path}, {err} (CoNLL-U).") from None


def _checked_label(record: Record, path: str, line: int, options: ReaderOptions) -> Record:
    """A record whose label is empty cannot train a classifier: refuse it by line."""
    if options.label_column and not record[options.label_column].strip():
        raise InputDataError(f"{path}, line {line}: the label column {options.label_column!r} is empty.")
    return record


def _read_txt(path: str, options: ReaderOptions) -> Iterator[dict[str, str]]:
    """Plain text: one example per non-blank line, or the corpus cut into fixed windows."""
    if options.txt_mode == "lines":
        for _, line in _decoded_lines(path):
            text = line.rstrip("\r\n")
            if text.strip():
                yield {options.text_column: text}
        return
    pending = ""
    for _, line in _decoded_lines(path):
        pending += line
        while len(pending) >= options.window_chars:
            yield {options.text_column: pending[: options.window_chars]}
            pending = pending[options.window_chars :]
    if pending.strip():
        yield {options.text_column: pending}
