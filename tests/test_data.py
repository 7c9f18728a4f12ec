"""Tests for genesis.data: synthetic tasks, stdlib corpus, file loading and LM batching."""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from genesis import data
from genesis.data import (
    EOS_ID,
    LM_TASKS,
    PAD_ID,
    TASKS,
    DataError,
    decode_bytes,
    encode_batch,
    encode_bytes,
    get_batch,
    load_lines,
    load_text_file,
    split_corpus,
    stdlib_docstring_corpus,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------ bytes


def test_byte_constants_and_roundtrip() -> None:
    assert (EOS_ID, PAD_ID, data.BYTE_VOCAB_SIZE) == (256, 257, 258)
    text = "héllo 🍕 东京"
    ids = encode_bytes(text)
    assert all(0 <= i < 256 for i in ids)
    # Special ids and -100 are skipped on decode.
    assert decode_bytes([*ids, EOS_ID, PAD_ID, -100]) == text
    assert decode_bytes(torch.tensor(ids)) == text


def test_encode_bytes_never_raises_on_lone_surrogate() -> None:
    assert encode_bytes("a\ud800b") == [ord("a"), ord("?"), ord("b")]


def test_encode_batch_pads_and_truncates() -> None:
    ids, mask = encode_batch(["ab", "abcdef"], seq_len=4)
    assert ids.dtype == mask.dtype == torch.long
    assert ids.tolist() == [[97, 98, PAD_ID, PAD_ID], [97, 98, 99, 100]]
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]


# --------------------------------------------------------- classification tasks


def _bracket_balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += {"(": 1, ")": -1}[ch]
        if depth < 0:
            return False
    return depth == 0


def _digits_sorted(text: str) -> bool:
    return list(text) == sorted(text)


def _majority_label(text: str) -> int:
    counts = Counter(text)
    top = counts.most_common()
    assert len(top) == 1 or top[0][1] > top[1][1], f"tie in {text!r}"
    return "abc".index(top[0][0])


@pytest.mark.parametrize("name", sorted(TASKS))
def test_classification_shapes_and_balance(name: str) -> None:
    ds = TASKS[name](101, 16, seed=0)
    assert ds.name == name and len(ds) == 101
    assert ds.input_ids.shape == ds.attention_mask.shape == (101, 16)
    assert ds.labels.shape == (101,) and ds.labels.dtype == torch.long
    assert len(ds.class_names) == ds.n_classes
    counts = Counter(ds.labels.tolist())
    assert set(counts) == set(range(ds.n_classes))
    assert max(counts.values()) - min(counts.values()) <= 1
    # Full-length ASCII strings: no padding and ids are exactly the bytes.
    assert all(len(t) == 16 and t.isascii() for t in ds.texts)
    assert bool(ds.attention_mask.all())
    assert decode_bytes(ds.input_ids[0]) == ds.texts[0]


def test_brackets_labels_are_correct_and_negatives_are_hard() -> None:
    ds = data.brackets(400, 12, seed=1)
    for text, label in zip(ds.texts, ds.labels.tolist(), strict=True):
        assert _bracket_balanced(text) == bool(label), text
    negatives = [t for t, y in zip(ds.texts, ds.labels.tolist(), strict=True) if y == 0]
    # Some negatives must have equal counts so "count the parens" is not enough.
    assert any(t.count("(") == t.count(")") for t in negatives)
    assert any(t.count("(") != t.count(")") for t in negatives)


def test_brackets_odd_seq_len_uses_padding() -> None:
    ds = data.brackets(10, 9, seed=0)
    assert all(len(t) == 8 for t in ds.texts)
    assert (ds.input_ids[:, -1] == PAD_ID).all() and (ds.attention_mask[:, -1] == 0).all()
    assert (ds.attention_mask[:, :-1] == 1).all()


def test_sorted_digits_labels_are_correct() -> None:
    ds = data.sorted_digits(300, 10, seed=2)
    for text, label in zip(ds.texts, ds.labels.tolist(), strict=True):
        assert text.isdigit()
        assert _digits_sorted(text) == bool(label), text


def test_majority_labels_are_correct() -> None:
    ds = data.majority(300, 11, seed=3)
    assert ds.class_names == ["a", "b", "c"]
    for text, label in zip(ds.texts, ds.labels.tolist(), strict=True):
        assert set(text) <= set("abc")
        assert _majority_label(text) == label, text


@pytest.mark.parametrize("name", sorted(TASKS) + sorted(LM_TASKS))
def test_tasks_are_deterministic_per_seed(name: str) -> None:
    make = TASKS.get(name) or LM_TASKS[name]
    first, again, other = (
        make(40, 14, seed=7),
        make(40, 14, seed=7),
        make(40, 14, seed=8),
    )
    assert first.texts == again.texts
    assert torch.equal(first.input_ids, again.input_ids)
    assert torch.equal(first.labels, again.labels)
    assert first.texts != other.texts


def test_tasks_do_not_touch_global_random_state() -> None:
    import random

    random.seed(123)
    expected = random.random()
    random.seed(123)
    data.brackets(20, 8, seed=0)
    data.copy(20, 8, seed=0)
    assert random.random() == expected


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError):
        data.brackets(4, 1, seed=0)
    with pytest.raises(ValueError):
        data.copy(4, 2, seed=0)
    with pytest.raises(ValueError):
        data.majority(-1, 5, seed=0)


# ------------------------------------------------------------------- LM tasks


@pytest.mark.parametrize("name", sorted(LM_TASKS))
def test_lm_task_labels_mask_padding(name: str) -> None:
    ds = LM_TASKS[name](50, 20, seed=0)
    assert ds.name == name
    assert ds.input_ids.shape == ds.labels.shape == ds.attention_mask.shape == (50, 20)
    real = ds.attention_mask.bool()
    # Labels are unshifted input ids (HF convention) with -100 exactly at padding.
    assert torch.equal(ds.labels[real], ds.input_ids[real])
    assert (ds.labels[~real] == -100).all()
    assert (ds.input_ids[~real] == PAD_ID).all()


def test_copy_and_reverse_structure() -> None:
    for text in data.copy(50, 21, seed=0).texts:
        left, right = text.split("|")
        assert left == right and left.islower() and 1 <= len(left) <= 10
    for text in data.reverse(50, 21, seed=0).texts:
        left, right = text.split("|")
        assert right == left[::-1]
    # Variable-length words mean some rows actually get padded.
    assert (data.copy(50, 21, seed=0).attention_mask == 0).any()


def test_counting_structure() -> None:
    ds = data.counting(20, 15, seed=0)
    for text in ds.texts:
        assert len(text) == 15
        assert all(int(b) == (int(a) + 1) % 10 for a, b in itertools.pairwise(text))
    assert len({t[0] for t in ds.texts}) > 1  # random starting offsets


def test_describe_task_covers_registry() -> None:
    for name in [*TASKS, *LM_TASKS]:
        assert data.describe_task(name).endswith(".")
    with pytest.raises(KeyError):
        data.describe_task("nope")


# --------------------------------------------------------------------- corpus


def test_corpus_is_large_and_cut_at_max_chars() -> None:
    corpus = stdlib_docstring_corpus()
    assert len(corpus) > 100_000
    assert "\n\n" in corpus
    assert stdlib_docstring_corpus(max_chars=1000) == corpus[:1000]


def test_corpus_skips_unimportable_modules() -> None:
    only_json = stdlib_docstring_corpus(modules=["json"])
    with_missing = stdlib_docstring_corpus(modules=["json", "no_such_module_xyz"])
    assert only_json == with_missing and "JSON" in only_json


def test_corpus_is_identical_across_processes() -> None:
    # Load data.py by path so the child skips genesis/__init__ (which pulls in
    # transformers): faster, and the child then has far fewer modules imported than
    # this pytest process, which is exactly the difference the corpus must ignore.
    code = (
        "import hashlib, importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('genesis_data', sys.argv[1])\n"
        "mod = sys.modules['genesis_data'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(mod)\n"
        "print(hashlib.sha256(mod.stdlib_docstring_corpus().encode()).hexdigest())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(REPO_ROOT / "genesis" / "data.py")],
        cwd=REPO_ROOT,
        capture_output=True,
        check=False,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    expected = hashlib.sha256(stdlib_docstring_corpus().encode()).hexdigest()
    assert out.stdout.strip() == expected


# ------------------------------------------------------------------ user files


def test_load_text_file_from_path_and_bytes(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes("\ufeffhello wörld\n".encode())
    assert load_text_file(path) == "hello wörld\n"  # BOM dropped
    assert load_text_file(str(path)) == "hello wörld\n"
    assert load_text_file(b"abc") == "abc"


def test_load_text_file_reports_invalid_utf8_offset() -> None:
    with pytest.raises(DataError, match="not valid UTF-8 at byte 5"):
        load_text_file(b"hello\xffworld")
    # The offset counts a leading BOM, so it matches a hex editor's view of the file.
    with pytest.raises(DataError, match="at byte 4"):
        load_text_file(b"\xef\xbb\xbfa\xc3(")


def test_load_text_file_too_large(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_bytes(b"x" * 101)
    with pytest.raises(DataError, match=r"101 bytes.*limit of 100 bytes"):
        load_text_file(path, max_bytes=100)
    with pytest.raises(DataError, match="limit"):
        load_text_file(b"x" * 11, max_bytes=10)


@pytest.mark.parametrize("raw", [b"", b"  \n\t \r\n"])
def test_load_text_file_empty(raw: bytes) -> None:
    with pytest.raises(DataError, match="is empty"):
        load_text_file(raw)


def test_load_text_file_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        load_text_file(tmp_path / "missing.txt")


def test_files_that_never_end_or_report_no_size_are_bounded(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a regular file"):
        load_text_file("/dev/zero")  # used to be read until memory ran out
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        load_text_file(fifo)  # opening it would wait for a writer forever
    proc = Path("/proc/self/status")  # a regular file that reports size 0
    assert proc.stat().st_size == 0 and len(proc.read_bytes()) > 100
    with pytest.raises(DataError, match="over the limit of 100 bytes"):
        load_text_file(proc, max_bytes=100)
    assert "Name:" in load_text_file(proc)


def test_mostly_nul_characters_are_refused_as_utf16_without_a_bom() -> None:
    for utf16 in ("hello\nworld\n".encode("utf-16-le"), "hello\nworld\n".encode("utf-16-be")):
        with pytest.raises(DataError, match="mostly NUL characters: UTF-16 without a byte-order mark"):
            load_lines(utf16)
    assert load_text_file(b"a few \x00 in text\x00") == "a few \x00 in text\x00"  # text may hold some


def test_csv_cells_as_long_as_the_file_and_unterminated_quotes() -> None:
    long = "x" * 200_000  # over the csv module's default 128 KiB cell limit, under the file limit
    assert load_lines(f"text\n{long}\nok\n".encode(), filename_hint="a.csv") == [long, "ok"]
    with pytest.raises(DataError, match="could not parse CSV at line 4: unexpected end of data"):
        load_lines(b'text\nfine\n"never closed\nswallowed\n', filename_hint="a.csv")
    assert load_lines(b'text\n5" wide\n"say ""hi"""\n', filename_hint="a.csv") == ['5" wide', 'say "hi"']


def test_load_lines_plain_text() -> None:
    raw = b"first line\n\n   \n  indented\r\nlast  \n"
    assert load_lines(raw) == ["first line", "  indented", "last"]
    inside = "a\u2028b\x85c\x0cd"  # separators that str.splitlines would cut at
    assert load_lines(f"{inside}\rnext\n".encode()) == [inside, "next"]


def test_load_lines_csv_text_column(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text('label,Text\n1,"hello, world"\n0,\n0,bye\n', encoding="utf-8")
    assert load_lines(path) == ["hello, world", "bye"]


def test_load_lines_csv_first_column_keeps_header_row() -> None:
    # No column is named 'text', so the first row is data and column 0 is used.
    raw = b"alpha,1\nbeta,2\n"
    assert load_lines(raw, filename_hint="upload.CSV") == ["alpha", "beta"]
    # Without a .csv hint the same bytes are plain lines.
    assert load_lines(raw) == ["alpha,1", "beta,2"]


def test_load_lines_csv_without_rows_raises() -> None:
    with pytest.raises(DataError, match="no non-empty lines"):
        load_lines(b"text\n\n", filename_hint="x.csv")


# ------------------------------------------------------------------ batching


def test_split_corpus_is_deterministic_bytes() -> None:
    text = "abcdefghij" * 10
    train, val = split_corpus(text)
    assert train.dtype == torch.long and len(train) == 90 and len(val) == 10
    assert decode_bytes(torch.cat([train, val])) == text
    again_train, again_val = split_corpus(text)
    assert torch.equal(train, again_train) and torch.equal(val, again_val)
    with pytest.raises(DataError):
        split_corpus("")


def test_get_batch_shapes_shift_and_determinism() -> None:
    ids = torch.arange(1000)
    x, y = get_batch(ids, block_size=16, batch_size=8, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 16)
    # Consecutive ids make the window checks exact: y is x shifted one step right.
    assert torch.equal(y, x + 1)
    assert torch.equal(x[:, 1:], x[:, :-1] + 1)
    x2, _ = get_batch(ids, 16, 8, torch.Generator().manual_seed(0))
    x3, _ = get_batch(ids, 16, 8, torch.Generator().manual_seed(1))
    assert torch.equal(x, x2) and not torch.equal(x, x3)


def test_get_batch_covers_last_window_and_rejects_short_corpus() -> None:
    ids = torch.arange(9)
    x, y = get_batch(ids, block_size=8, batch_size=4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x[0], ids[:8]) and torch.equal(y[0], ids[1:])
    with pytest.raises(DataError, match="block_size"):
        get_batch(torch.arange(8), block_size=8, batch_size=1, generator=torch.Generator())


# -------------------------------------------------------------- sample texts


def test_sample_texts_are_varied() -> None:
    texts = data.sample_texts()
    assert 30 <= len(texts) <= 60 and len(set(texts)) == len(texts)
    assert any(not t.isascii() for t in texts)  # emoji / CJK exercise multi-byte paths
    texts.append("mutating the copy")
    assert len(data.sample_texts()) == len(texts) - 1


def test_other_encodings_and_old_mac_line_ends_are_named_or_read() -> None:
    with pytest.raises(DataError, match="looks like UTF-16 without a byte-order mark"):
        load_lines("héllo wörld ありがとう\n".encode("utf-16-le"))  # not only ASCII text
    with pytest.raises(DataError, match="looks like UTF-32"):
        load_lines("text".encode("utf-32"))  # it used to be called UTF-16
    assert load_lines(b'text\r"a"\rb\r', filename_hint="a.csv") == ["a", "b"]  # \r alone ends a row
