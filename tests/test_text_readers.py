import pytest

from components.data.text_readers import InputDataError, ReaderOptions, count_records, read_records

CSV = ReaderOptions(format="csv", text_column="text", label_column="label")


def records(path, options):
    return list(read_records(path, options))


def test_csv_with_quotes_and_multiline_fields(write):
    path = write("d.csv", 'label,text\n1,"Hello, world"\n0,"two\nlines ""quoted"""\n')
    assert records(path, CSV) == [
        {"text": "Hello, world", "label": "1"},
        {"text": 'two\nlines "quoted"', "label": "0"},
    ]


def test_tsv_keeps_quotes_as_text(write):
    path = write("d.tsv", 'sentence\tlabel\nit \'s a "gem"\t1\n')
    options = ReaderOptions(format="tsv", text_column="sentence", label_column="label")
    assert records(path, options) == [{"sentence": 'it \'s a "gem"', "label": "1"}]


def test_jsonl_accepts_numbers_as_labels(write):
    path = write("d.jsonl", '{"text": "good", "label": 1}\n\n{"text": "bad", "label": "0"}\n')
    assert records(path, CSV.__class__("jsonl", "text", "label")) == [
        {"text": "good", "label": "1"},
        {"text": "bad", "label": "0"},
    ]


def test_txt_lines_and_windows(write):
    path = write("d.txt", "first line\n\nsecond line\n")
    assert records(path, ReaderOptions("txt", "text")) == [{"text": "first line"}, {"text": "second line"}]
    windows = records(path, ReaderOptions("txt", "text", txt_mode="windows", window_chars=5))
    assert "".join(w["text"] for w in windows) == "first line\n\nsecond line\n"
    assert all(len(w["text"]) == 5 for w in windows[:-1])


def test_byte_order_mark_is_not_text(write):
    path = write("d.csv", "\ufefftext\nhello\n")
    assert records(path, ReaderOptions("csv", "text")) == [{"text": "hello"}]


@pytest.mark.parametrize(
    "content, options, message",
    [
        ("label,review\n1,x\n", CSV, r"d\.csv: the header has no column 'text' \(it has 'label', 'review'\)"),
        ("", CSV, r"d\.csv: the file holds no examples \(it is empty or has only a header\)"),
        ("label,text\n", CSV, "holds no examples"),
        ("label,text\n1,ok\n0,too,many\n", CSV, r"d\.csv, line 3: malformed row with 3 field\(s\) where the header has 2"),
        ('label,text\n1,"unclosed\n', CSV, r"d\.csv, line \d: malformed CSV"),
        (b"label,text\n1,caf\xe9\n", CSV, r"d\.csv, line 2: bytes that are not UTF-8 \(byte 0xe9 at column 6\)"),
        ('{"text": "a"}\n{"text": \n', ReaderOptions("jsonl", "text"), r"d\.csv, line 2: malformed JSON"),
        ('{"txt": "a"}\n', ReaderOptions("jsonl", "text"), r"line 1: no field 'text' \(the object has 'txt'\)"),
        ("\n\n", ReaderOptions("txt", "text"), "holds no examples"),
        ("label,text\n1,ok\n ,no label\n", ReaderOptions("csv", "text", "label"),
         r"d\.csv, line 3: the label column 'label' is empty"),
        ('{"text": "a", "y": ""}\n', ReaderOptions("jsonl", "text", "y"), r"line 1: the label column 'y' is empty"),
    ],
)
def test_bad_input_names_the_file_line_and_problem(write, content, options, message):
    path = write("d.csv", content)
    with pytest.raises(InputDataError, match=message):
        records(path, options)


def test_missing_file_folder_and_no_match(tmp_path):
    with pytest.raises(InputDataError, match="is a folder"):
        records(str(tmp_path), CSV)
    with pytest.raises(InputDataError, match="no such file"):
        records(str(tmp_path / "nope.csv"), CSV)
    with pytest.raises(InputDataError, match="no input file matched"):
        count_records([], CSV)
