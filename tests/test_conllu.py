"""Tagged input: CoNLL-U sentences and JSONL token/tag lists, and each malformed case refused by line."""

import pytest

from components.data.text_readers import InputDataError, ReaderOptions, read_records

CONLLU = ReaderOptions(format="conllu", text_column="tokens", tag_column="upos")
# a multi-word token (3-4), an empty node (5.1), a MISC key, comments kept
SENTENCES = (
    "# newdoc id = d1\n"
    "# sent_id = s1\n"
    "# text = I don't know.\n"
    "1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_\tNER=O\n"
    "2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n"
    "2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\tNER=O\n"
    "3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\tNER=O\n"
    "4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\tNER=O\n"
    "4.1\tit\t_\t_\t_\t_\t_\t_\t4:obj\t_\n"
    "5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\tNER=O\n"
    "\n"
    "1\tParis\tParis\tPROPN\tNNP\t_\t0\troot\t_\tNER=B-LOC\n"
)


def records(path, options=CONLLU):
    return list(read_records(path, options))


def test_conllu_sentences_skip_multiword_tokens_and_empty_nodes(write):
    path = write("d.conllu", SENTENCES)
    first, second = records(path)
    assert first == {"tokens": ["I", "do", "n't", "know", "."], "upos": ["PRON", "AUX", "PART", "VERB", "PUNCT"],
                     "text": "I don't know.", "sent_id": "s1"}
    # no comments: the words joined, and the file and line as the id
    assert second == {"tokens": ["Paris"], "upos": ["PROPN"], "text": "Paris", "sent_id": "d.conllu:12"}


@pytest.mark.parametrize("column, tags", [("xpos", ["PRP", "VBP", "RB", "VB", "."]), ("deprel", ["nsubj", "aux", "advmod", "root", "punct"]),
                                          ("NER", ["O"] * 5)])
def test_the_tag_column_is_a_field_or_a_misc_key(write, column, tags):
    path = write("d.conllu", SENTENCES)
    first = records(path, ReaderOptions(format="conllu", text_column="tokens", tag_column=column))[0]
    assert first[column] == tags


@pytest.mark.parametrize("text, line, problem", [
    ("1\tI\tI\tPRON\tPRP\t_\t0\troot\t_\n", 1, "9 tab-separated field(s)"),
    ("1\tI\tI\tPRON\tPRP\t_\t0\troot\t_\t_\nx\tam\tbe\tAUX\t_\t_\t1\taux\t_\t_\n", 2, "bad ID 'x'"),
    ("1\tI\tI\tPRON\tPRP\t_\t0\troot\t_\t_\n3\tam\tbe\tAUX\t_\t_\t1\taux\t_\t_\n", 2, "word ID 3 where 2 was expected"),
    ("1\tI\tI\t_\tPRP\t_\t0\troot\t_\t_\n", 1, "no upos tag"),
    ("# text = nothing\n\n", 2, "comments but no word lines"),
])
def test_malformed_conllu_names_the_file_and_line(write, text, line, problem):
    path = write("bad.conllu", text)
    with pytest.raises(InputDataError) as err:
        records(path)
    assert f"bad.conllu, line {line}: " in str(err.value) and problem in str(err.value)


def test_a_missing_misc_key_is_refused(write):
    path = write("d.conllu", "1\tI\tI\tPRON\tPRP\t_\t0\troot\t_\tSpaceAfter=No\n")
    with pytest.raises(InputDataError, match=r"line 1: the MISC field 'SpaceAfter=No' has no key 'NER'"):
        records(path, ReaderOptions(format="conllu", text_column="tokens", tag_column="NER"))


JSONL = ReaderOptions(format="jsonl", text_column="tokens", tag_column="tags")


def test_jsonl_token_and_tag_lists(write):
    path = write("d.jsonl", '{"tokens": ["John", "runs"], "tags": ["B-PER", "O"]}\n')
    assert records(path, JSONL) == [{"tokens": ["John", "runs"], "tags": ["B-PER", "O"]}]


@pytest.mark.parametrize("line, problem", [
    ('{"tokens": ["a", "b"], "tags": ["X"]}', "2 tokens in 'tokens' but 1 tags in 'tags'"),
    ('{"tokens": "a b", "tags": ["X", "Y"]}', "field 'tokens' must be a list of strings"),
    ('{"tokens": [], "tags": []}', "field 'tokens' holds no tokens"),
    ('{"tokens": ["a", ""], "tags": ["X", "Y"]}', "field 'tokens' holds an empty string"),
])
def test_jsonl_tagged_lines_are_checked(write, line, problem):
    path = write("d.jsonl", '{"tokens": ["ok"], "tags": ["X"]}\n' + line + "\n")
    with pytest.raises(InputDataError) as err:
        records(path, JSONL)
    assert "d.jsonl, line 2: " in str(err.value) and problem in str(err.value)


def test_the_shared_treebank_reads_as_its_readme_counts():
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "ud_en_ewt", "dev.conllu")
    if not os.path.exists(path):
        pytest.skip("../shared/data is not beside the checkout")
    sentences = records(path)
    assert len(sentences) == 2001 and sum(len(s["tokens"]) for s in sentences) == 25147
    assert all(len(s["tokens"]) == len(s["upos"]) for s in sentences)
