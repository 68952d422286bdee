"""CoNLL-U (Universal Dependencies) files as tagged sentences: one record per sentence.

A sentence is a block of lines ended by a blank line: `#` comments, then one line per word with
ten tab-separated fields (ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC). Only the words
count: a multi-word token's range line (`3-4`) and an empty node (`8.1`) are skipped, as the
UD guidelines say a tagger reads the syntactic words. Each record holds
  tokens       the FORM of every word, as written (never re-tokenized)
  <tag column> the tag of every word: a field by its name (upos, xpos, lemma, feats, deprel)
               or a key of the MISC field (NER=B-PER)
  text         the `# text =` comment, else the words joined by spaces
  sent_id      the `# sent_id =` comment, else the file's name and the sentence's first line
Anything else stops the read with the file, the line and the problem (`InputDataError`).
"""

from __future__ import annotations

import os
import re
from typing import Iterator

FIELDS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")
TOKENS_FEATURE = "tokens"  # the words of a sentence
SENTENCE_FEATURES = ("text", "sent_id")  # from the comments: what identifies a sentence to a reader
_WORD_ID = re.compile(r"[1-9][0-9]*")
_RANGE_ID = re.compile(r"[1-9][0-9]*-[1-9][0-9]*")
_EMPTY_NODE_ID = re.compile(r"[0-9]+\.[1-9][0-9]*")


class ConlluError(ValueError):
    """A line that is not CoNLL-U; the message names the line and the problem (the reader adds the file)."""

    def __init__(self, line: int, problem: str):
        super().__init__(f"line {line}: {problem}")
        self.line = line


def tag_of(fields: list[str], tag_column: str, line: int) -> str:
    """The tag a word line gives for `tag_column`: a field by name, or a MISC key."""
    name = tag_column.lower()
    if name in FIELDS:
        value = fields[FIELDS.index(name)]
    else:
        pairs = dict(item.partition("=")[::2] for item in fields[9].split("|") if item != "_")
        if tag_column not in pairs:
            raise ConlluError(line, f"the MISC field {fields[9]!r} has no key {tag_column!r} (the tag column); "
                                    f"a field name ({', '.join(FIELDS[1:])}) or a MISC key present on every word")
        value = pairs[tag_column]
    if value in ("", "_"):
        raise ConlluError(line, f"the word {fields[1]!r} has no {tag_column} tag ({value!r})")
    return value


def read_sentences(lines: Iterator[tuple[int, str]], path: str, tag_column: str) -> Iterator[dict]:
    """Records of the sentences in (line number, line) pairs of one CoNLL-U file."""
    tokens: list[str] = []
    tags: list[str] = []
    comments: dict[str, str] = {}
    first_line = 0

    def record() -> dict:
        sentence = {TOKENS_FEATURE: list(tokens), tag_column: list(tags)}
        sentence["text"] = comments.get("text") or " ".join(tokens)
        sentence["sent_id"] = comments.get("sent_id") or f"{os.path.basename(path)}:{first_line}"
        return sentence

    number = 0
    for number, raw in lines:
        line = raw.rstrip("\r\n")
        if not line.strip():
            if tokens:
                yield record()
            elif comments:
                raise ConlluError(number, "a sentence with comments but no word lines")
            tokens, tags, comments, first_line = [], [], {}, 0
            continue
        first_line = first_line or number
        if line.startswith("#"):
            key, equals, value = line[1:].partition("=")
            if equals and key.strip() in SENTENCE_FEATURES:
                comments[key.strip()] = value.strip()
            continue
        fields = line.split("\t")
        if len(fields) != len(FIELDS):
            raise ConlluError(number, f"{len(fields)} tab-separated field(s) where a CoNLL-U word line has "
                                      f"{len(FIELDS)} ({' '.join(f.upper() for f in FIELDS)})")
        word_id = fields[0]
        if _RANGE_ID.fullmatch(word_id) or _EMPTY_NODE_ID.fullmatch(word_id):
            continue  # a multi-word token's range or an empty node: not a word of the sentence
        if not _WORD_ID.fullmatch(word_id):
            raise ConlluError(number, f"bad ID {word_id!r} (a word's ID is 1, 2, ...; '3-4' a multi-word token, "
                                      f"'8.1' an empty node)")
        if int(word_id) != len(tokens) + 1:
            raise ConlluError(number, f"word ID {word_id} where {len(tokens) + 1} was expected (IDs count the "
                                      f"sentence's words from 1)")
        if not fields[1]:
            raise ConlluError(number, "the word's FORM is empty")
        tokens.append(fields[1])
        tags.append(tag_of(fields, tag_column, number))
    if tokens:
        yield record()
    elif comments:
        raise ConlluError(number, "a sentence with comments but no word lines")
