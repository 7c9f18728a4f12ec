"""Tokenizers without downloads: the byte tokenizer, a local Hugging Face folder, encode_text."""

from __future__ import annotations

import pytest
from transformers import PreTrainedTokenizerFast

from genesis import byte_tokenizer, load_tokenizer
from genesis.data import BYTE_VOCAB_SIZE
from genesis.tokenization import EOS_TOKEN, PAD_TOKEN, TextError, encode_text

TEXTS = [
    "hello, world",
    "emoji 🧠🌱 and 👩‍👩‍👧 (a joined family)",
    "CJK 中文 日本語 한국어",
    "control \x00\x01\t\n\r\x1b[0m\x7f end",
    "accents: café naïve Ωμέγα",
    "  leading and trailing spaces  ",
    "<|endoftext|> is text here, not a special token",
]


@pytest.fixture(scope="module")
def tok() -> PreTrainedTokenizerFast:
    return byte_tokenizer()


def test_vocabulary_and_special_ids(tok):
    assert isinstance(tok, PreTrainedTokenizerFast)
    assert len(tok) == BYTE_VOCAB_SIZE == 258
    assert (tok.eos_token, tok.pad_token) == (EOS_TOKEN, PAD_TOKEN)
    assert (tok.eos_token_id, tok.pad_token_id) == (256, 257)


@pytest.mark.parametrize("text", TEXTS)
def test_text_round_trips_as_its_bytes(tok, text):
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert ids == list(text.encode("utf-8"))
    assert tok.decode(ids) == text


def test_every_byte_is_its_own_token(tok):
    for b in range(256):
        assert tok.convert_ids_to_tokens(b) is not None
    everything = bytes(range(256)).decode("latin-1")
    ids = tok(everything, add_special_tokens=False)["input_ids"]
    assert ids == list(everything.encode("utf-8"))


def test_special_ids_decode(tok):
    ids = list(b"hi") + [256]
    assert tok.decode(ids) == "hi" + EOS_TOKEN
    assert tok.decode(ids, skip_special_tokens=True) == "hi"


def test_batch_padding_uses_the_pad_id(tok):
    batch = tok(["a", "abc"], padding=True, add_special_tokens=False)
    assert batch["input_ids"] == [[97, 257, 257], [97, 98, 99]]
    assert batch["attention_mask"] == [[1, 0, 0], [1, 1, 1]]


def test_local_tokenizer_folder_loads(tmp_path, tok):
    tok.save_pretrained(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert len(loaded) == 258
    assert (loaded.eos_token_id, loaded.pad_token_id) == (256, 257)
    for text in TEXTS:
        ids = loaded(text, add_special_tokens=False)["input_ids"]
        assert ids == tok(text, add_special_tokens=False)["input_ids"]
        assert loaded.decode(ids) == text
    assert load_tokenizer().get_vocab() == tok.get_vocab()


def test_missing_tokenizer_folder_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_tokenizer(tmp_path / "nowhere")


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_text_is_refused(text):
    with pytest.raises(TextError, match="empty"):
        encode_text(text, 16)


def test_non_text_is_refused():
    with pytest.raises(TextError, match="string"):
        encode_text(b"bytes", 16)


@pytest.mark.parametrize("limit", [0, -1, True, 2.5])
def test_a_limit_below_one_token_is_refused(limit):
    with pytest.raises(ValueError, match="max_tokens must be an integer >= 1"):
        encode_text("hello", limit)  # 0 used to keep all 5 ids (ids[-0:]) while the note said 0


def test_short_text_is_kept_whole():
    ids, note = encode_text("héllo 🧠", 64)
    assert ids == list("héllo 🧠".encode())
    assert note is None


def test_long_text_keeps_its_last_tokens_with_a_note():
    text = "".join(chr(ord("a") + i % 26) for i in range(100))
    ids, note = encode_text(text, 32)
    assert ids == list(text.encode())[-32:]
    assert "100" in note and "32" in note


def test_encode_text_with_another_tokenizer(tmp_path, tok):
    tok.save_pretrained(tmp_path)
    ids, note = encode_text("abc", 2, load_tokenizer(tmp_path))
    assert ids == [98, 99] and note
