"""Text a user may type or upload: empty, too long, invalid UTF-8, emoji, CJK, control characters.
Each gets a clear message or is handled correctly, in the library and on the app's pages; never a
traceback.
"""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import genesis
from genesis.data import DataError, decode_bytes, load_lines, load_text_file
from genesis.tokenization import TextError, byte_tokenizer, encode_text
from tests.app.conftest import assert_ok, open_app
from tests.test_properties import SETTINGS

EMPTY = ["", " ", "\n", "\t \r\n", "\u3000", "\u2003\u00a0", " \x0b\x0c\x1c\x1d\x1e\x1f\x85"]
# Each of these is text a user may paste: it must run, and every byte must come back.
HOSTILE = [
    "😀🧠👨‍👩‍👧‍👦🏳️‍🌈",  # emoji, zero-width joiners, variation selectors
    "中文字符，日本語のテキスト、한국어",  # CJK with full-width punctuation
    "مرحبا بالعالم \u202eevil\u202c",  # right-to-left text and a bidi override
    "e\u0301 n\u0303 Z\u0335\u0321\u0334a\u0336\u0327l\u0337\u0322g\u0338o",  # combining marks
    "\x00\x01\x02\x07\x08\x1b[31mred\x1b[0m\x7f",  # NUL, bell, backspace, ANSI escapes, DEL
    "\ufeffBOM first, \u200bzero\u200cwidth\u200djoiners",
    "line one\r\nline two\rline three\n",
    "𝕳𝖊𝖑𝖑𝖔 \U0010ffff \ufffd",  # astral plane, the last code point, the replacement character
]


@pytest.fixture(scope="module")
def lm() -> genesis.Genesis:
    return genesis.Genesis(genesis.preset("tiny")).eval()


@pytest.mark.parametrize("text", EMPTY, ids=repr)
def test_empty_and_whitespace_only_text_is_refused_with_a_message(text):
    with pytest.raises(TextError, match="the input is empty: type some text"):
        encode_text(text, 64)


def test_non_text_is_refused_with_a_message():
    for value in (b"bytes", None, 42, ["a"]):
        with pytest.raises(TextError, match="text must be a string"):
            encode_text(value, 64)


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_text_round_trips_and_runs(text, lm):
    ids, note = encode_text(text, lm.config.n_pos_size)
    assert note is None
    assert ids == list(text.encode("utf-8"))
    assert decode_bytes(ids) == text
    assert byte_tokenizer().decode(ids) == text
    with torch.no_grad():
        out = lm(torch.tensor([ids]), trace=True)
        continued = lm.generate(
            torch.tensor([ids]), max_new_tokens=3, do_sample=False, eos_token_id=256, pad_token_id=257
        )
    assert torch.isfinite(out.logits).all()
    assert out.trace.count == out.neuron_activation_count > 0
    decode_bytes(continued[0].tolist())  # whatever bytes came out (incl. end-of-text), they decode


def test_lone_surrogates_become_question_marks():
    """A Python string can hold what UTF-8 cannot; it is replaced, not a crash."""
    ids, _ = encode_text("a\ud800b\udfff", 64)
    assert ids == [ord("a"), ord("?"), ord("b"), ord("?")]
    assert encode_text("a\ud800b", 64, byte_tokenizer())[0] == [ord("a"), ord("?"), ord("b")]


def test_long_text_is_windowed_with_a_note(lm):
    n = lm.config.n_pos_size
    exact, note = encode_text("x" * n, n)
    assert len(exact) == n and note is None
    text = "".join(chr(ord("a") + i % 26) for i in range(5 * n)) + "THE END"
    ids, note = encode_text(text, n)
    assert ids == list(text.encode())[-n:]
    assert note == f"input has {5 * n + 7} tokens; only the last {n} (n_pos_size) are used"
    huge, note = encode_text("🧠" * 1_000_000, n)  # 4 MB pasted: still only the window
    assert len(huge) == n and "input has 4000000 tokens" in note
    with torch.no_grad():
        out = lm(torch.tensor([ids]))
        # Generation past n_pos_size keeps the last n_pos_size tokens as context.
        more = lm.generate(torch.tensor([ids]), max_new_tokens=4, do_sample=False, pad_token_id=257)
    assert torch.isfinite(out.logits).all() and more.shape == (1, n + 4)
    with pytest.raises(ValueError, match=f"{n + 1} tokens is longer than n_pos_size={n}; truncate or window"):
        lm(torch.tensor([list(text.encode())[-(n + 1) :]]))


@settings(max_examples=300, **SETTINGS)
@given(st.text(alphabet=st.characters(codec=None), max_size=80), st.integers(1, 40))
def test_any_string_encodes_or_gets_a_text_error(text, max_tokens):
    try:
        ids, note = encode_text(text, max_tokens)
    except TextError as e:
        assert not text.strip() and "empty" in str(e)
        return
    full = list(text.encode("utf-8", errors="replace"))
    assert ids == full[-max_tokens:] and all(0 <= i < 256 for i in ids)
    assert (note is None) == (len(full) <= max_tokens)


# ---------------------------------------------------------------------------------------------
# Uploaded text files

BAD_FILES = [
    (b"good start \xff\xfe then garbage", "is not valid UTF-8 at byte 11"),
    (b"\xef\xbb\xbfBOM then \xc3\x28", "is not valid UTF-8 at byte 12"),  # offsets count the BOM
    ("UTF-16 text".encode("utf-16"), "is not valid UTF-8 at byte 0 (it looks like UTF-16: save it as UTF-8)"),
    (b"truncated \xe2\x82", "is not valid UTF-8 at byte 10"),
    (b"", "is empty"),
    (b" \n\t\r\n ", "is empty"),
    (b"\xef\xbb\xbf", "is empty"),
]


@pytest.mark.parametrize("data, expected", BAD_FILES, ids=range(len(BAD_FILES)))
def test_bad_text_files_name_the_problem(data, expected):
    for load in (load_text_file, load_lines):
        with pytest.raises(DataError, match=re.escape(expected)):
            load(data)


def test_text_files_over_the_limit_are_refused(tmp_path):
    with pytest.raises(DataError, match="over"):
        load_text_file(b"x" * 101, max_bytes=100)
    sparse = tmp_path / "huge.txt"
    with sparse.open("wb") as f:
        f.truncate(6_000_000)
    with pytest.raises(DataError, match="huge.txt"):
        load_text_file(sparse)


def test_hostile_text_files_load_exactly():
    for text in HOSTILE:
        if text.strip():
            assert load_text_file(text.encode()) == text.removeprefix("\ufeff")


# ---------------------------------------------------------------------------------------------
# The Run page (AppTest)


def _route_caption(at) -> str:
    return next(c.value for c in at.caption if "neurons fired" in c.value)


@pytest.mark.slow
def test_run_page_handles_bad_and_strange_text():
    at = open_app("run")
    box = "run_text_input"
    for text in EMPTY + ["\n\n  \n"]:
        at.text_area(key=box).input(text).run()
        assert_ok(at)
        assert any("Nothing to run: the input is empty" in i.value for i in at.info), repr(text)
    for text in HOSTILE:
        at.text_area(key=box).input(text).run()
        assert_ok(at)
        assert "section 0:" in _route_caption(at), repr(text)
    long = "word " * 200  # 1000 bytes, over the app preset's n_pos_size of 256
    at.text_area(key=box).input(long).run()
    assert_ok(at)
    assert any("input has 1000 tokens; only the last 256" in w.value for w in at.warning)


@pytest.mark.slow
def test_train_page_upload_reports_the_bad_byte():
    at = open_app("train")
    choices = at.selectbox(key="train_data").options
    upload_choice = next(c for c in choices if "pload" in c)
    at.selectbox(key="train_data").set_value(upload_choice).run()
    assert_ok(at)
    at.file_uploader(key="train_upload").set_value(("notes.txt", b"fine until \x80 here", "text/plain")).run()
    assert_ok(at)
    errors = [e.value for e in at.error]  # an error, not a note (it was shown as st.info)
    assert any("notes.txt" in s and "not valid UTF-8 at byte 11" in s for s in errors), errors
