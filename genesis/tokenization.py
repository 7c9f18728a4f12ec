"""Tokenizers that need no downloads: a byte-level one built in code, or a local Hugging Face folder."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from .data import BYTE_IDS, EOS_ID, PAD_ID

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level tokenizer: token id = byte value (0..255), 256 = end-of-text, 257 = pad.

    Any text round-trips as its UTF-8 bytes (emoji, CJK, control characters, even the text of a
    special token), and nothing is read from disk. A lone surrogate ("\\ud800") has no UTF-8 bytes
    and the tokenizer refuses it; `encode_text` turns it into "?".
    """
    # Byte-level pre-tokenizer maps each byte to one printable character; the vocab is those 256.
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    byte_to_char = _bytes_to_unicode()
    vocab = {byte_to_char[b]: b for b in range(BYTE_IDS)}
    assert set(vocab) == set(alphabet)
    vocab[EOS_TOKEN] = EOS_ID
    vocab[PAD_TOKEN] = PAD_ID
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=EOS_TOKEN))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False), pre_tokenizers.Split("", "isolated")]
    )
    tok.decoder = decoders.ByteLevel()
    # split_special_tokens: a user's text that happens to contain "<|endoftext|>" is still just its
    # bytes; the special ids come only from code (generate, padding).
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        split_special_tokens=True,
        model_max_length=1 << 30,
    )


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (what ByteLevel uses)."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def load_tokenizer(path: str | Path | None = None) -> PreTrainedTokenizerFast:
    """The byte tokenizer, or a Hugging Face tokenizer from a local folder (never downloaded)."""
    if path is None:
        return byte_tokenizer()
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"tokenizer folder not found: {folder}")
    from transformers import AutoTokenizer  # here: its import costs 0.3 s that byte_tokenizer() does not need

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


class TextError(ValueError):
    """Text that cannot be run (empty, ...); the message says why."""


def encode_text(
    text: str, max_tokens: int, tokenizer: PreTrainedTokenizerFast | None = None
) -> tuple[list[int], str | None]:
    """Token ids for one text, and a note when it was cut to the model's last `max_tokens` tokens.

    Empty or whitespace-only text raises TextError; control characters, emoji and CJK are fine
    (the byte tokenizer covers every byte).
    """
    if not isinstance(text, str):
        raise TextError(f"text must be a string, got {type(text).__name__}")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be an integer >= 1, got {max_tokens!r}")  # ids[-0:] is all of them
    if not text.strip():
        raise TextError("the input is empty: type some text")
    if tokenizer is None:
        # The byte tokenizer's ids are the UTF-8 bytes: computed directly, a pasted megabyte takes
        # milliseconds, not the tokenizer's seconds. Lone surrogates (not encodable) become "?".
        ids = list(text.encode("utf-8", errors="replace"))
    else:
        ids = tokenizer(text.encode("utf-8", errors="replace").decode("utf-8"), add_special_tokens=False)["input_ids"]
    if len(ids) > max_tokens:
        note = f"input has {len(ids)} tokens; only the last {max_tokens} (n_pos_size) are used"
        return ids[-max_tokens:], note
    return ids, None
