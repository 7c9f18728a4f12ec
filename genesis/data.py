"""Built-in data for Genesis Explorer: no downloads, deterministic, pure Python + torch.

Everything here is byte-level: a token id is a byte value (0..255), plus two special
ids, ``EOS_ID`` (end of text) and ``PAD_ID`` (padding). The module offers

* synthetic classification tasks (``TASKS``) and LM sequence tasks (``LM_TASKS``),
  each a function ``(n, seq_len, seed)`` that uses a private ``random.Random(seed)``;
* a corpus harvested from the local standard library's docstrings;
* loaders for user-supplied text / CSV files with friendly ``DataError`` messages;
* nanoGPT-style LM batching (``split_corpus`` / ``get_batch``);
* a small set of sample texts for the activations page.

Streamlit is never imported here: the app layer owns all UI concerns.
"""

from __future__ import annotations

import ast
import csv
import functools
import importlib
import inspect
import io
import itertools
import os
import random
import re
import stat
import string
import sys
import tokenize
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = [
    "BYTE_IDS",
    "BYTE_VOCAB_SIZE",
    "DEFAULT_CORPUS_MODULES",
    "EOS_ID",
    "LM_TASKS",
    "PAD_ID",
    "TASKS",
    "ClassificationData",
    "DataError",
    "LMData",
    "brackets",
    "copy",
    "counting",
    "decode_bytes",
    "describe_task",
    "encode_batch",
    "encode_bytes",
    "get_batch",
    "load_lines",
    "load_text_file",
    "majority",
    "reverse",
    "sample_texts",
    "sorted_digits",
    "split_corpus",
    "stdlib_docstring_corpus",
]

BYTE_IDS = 256  # token ids 0..255 are the bytes
EOS_ID = BYTE_IDS  # end of text
PAD_ID = BYTE_IDS + 1
BYTE_VOCAB_SIZE = BYTE_IDS + 2
IGNORE_INDEX = -100  # HF / torch cross-entropy convention for "no loss here"


class DataError(ValueError):
    """A user-facing data problem (bad file, too small corpus, ...)."""


# --------------------------------------------------------------------------- bytes


def encode_bytes(text: str) -> list[int]:
    """UTF-8 byte ids of ``text``; unencodable characters (lone surrogates) become '?'."""
    return list(text.encode("utf-8", errors="replace"))


def decode_bytes(ids: Iterable[int] | torch.Tensor) -> str:
    """Inverse of :func:`encode_bytes`; special / negative ids are skipped."""
    if isinstance(ids, torch.Tensor):
        ids = ids.flatten().tolist()
    raw = bytes(int(i) for i in ids if 0 <= int(i) < 256)
    return raw.decode("utf-8", errors="replace")


def encode_batch(texts: Sequence[str], seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Byte-encode ``texts`` into right-padded ``(input_ids, attention_mask)``, both (n, seq_len).

    Texts longer than ``seq_len`` bytes are truncated.
    """
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    input_ids = torch.full((len(texts), seq_len), PAD_ID, dtype=torch.long)
    attention_mask = torch.zeros((len(texts), seq_len), dtype=torch.long)
    for row, text in enumerate(texts):
        ids = encode_bytes(text)[:seq_len]
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    return input_ids, attention_mask


# --------------------------------------------------------------- task containers


@dataclass
class ClassificationData:
    """A batch of labelled sequences for a sequence-classification task."""

    texts: list[str]
    input_ids: torch.Tensor  # (n, seq_len) long, byte ids right-padded with PAD_ID
    attention_mask: torch.Tensor  # (n, seq_len) long, 1 = real token
    labels: torch.Tensor  # (n,) long
    n_classes: int
    class_names: list[str]
    name: str

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class LMData:
    """A batch of sequences for causal LM training (labels are *not* pre-shifted)."""

    texts: list[str]
    input_ids: torch.Tensor  # (n, seq_len) long
    attention_mask: torch.Tensor  # (n, seq_len) long
    labels: torch.Tensor  # (n, seq_len) long, input_ids with padding set to -100
    name: str

    def __len__(self) -> int:
        return len(self.texts)


def _check_args(n: int, seq_len: int, min_len: int) -> None:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if seq_len < min_len:
        raise ValueError(f"seq_len must be >= {min_len} for this task, got {seq_len}")


def _balanced_labels(n: int, n_classes: int, rng: random.Random) -> list[int]:
    # Round-robin then shuffle: class counts differ by at most one.
    labels = [i % n_classes for i in range(n)]
    rng.shuffle(labels)
    return labels


def _classification(
    texts: list[str], labels: list[int], seq_len: int, class_names: list[str], name: str
) -> ClassificationData:
    input_ids, attention_mask = encode_batch(texts, seq_len)
    return ClassificationData(
        texts=texts,
        input_ids=input_ids,
        attention_mask=attention_mask,
        labels=torch.tensor(labels, dtype=torch.long),
        n_classes=len(class_names),
        class_names=list(class_names),
        name=name,
    )


# ------------------------------------------------------------------- brackets


def _is_balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += 1 if ch == "(" else -1
        if depth < 0:
            return False
    return depth == 0


def _random_balanced(length: int, rng: random.Random) -> str:
    # Random walk that never dips below zero and closes everything by the end.
    out: list[str] = []
    opens_left, depth = length // 2, 0
    for _ in range(length):
        choices = []
        if opens_left > 0:
            choices.append("(")
        if depth > 0:
            choices.append(")")
        ch = rng.choice(choices)
        out.append(ch)
        opens_left -= ch == "("
        depth += 1 if ch == "(" else -1
    return "".join(out)


def _random_unbalanced(length: int, rng: random.Random) -> str:
    if rng.random() < 0.5:
        # Hardest negatives: equal counts of '(' and ')', but the prefix dips below zero.
        chars = ["("] * (length // 2) + [")"] * (length // 2)
        while True:
            rng.shuffle(chars)
            text = "".join(chars)
            if not _is_balanced(text):
                return text
    # Near misses: a balanced string with one bracket flipped (counts now differ by 2).
    chars = list(_random_balanced(length, rng))
    i = rng.randrange(length)
    chars[i] = "(" if chars[i] == ")" else ")"
    return "".join(chars)


def brackets(n: int, seq_len: int, seed: int = 0) -> ClassificationData:
    """Balanced (1) vs unbalanced (0) strings of '(' and ')'.

    Both classes share the same even length (``seq_len``, or ``seq_len - 1`` when odd,
    in which case the last position is padding), so length is never a giveaway.
    """
    _check_args(n, seq_len, 2)
    rng = random.Random(seed)
    length = seq_len - seq_len % 2
    labels = _balanced_labels(n, 2, rng)
    texts = [_random_balanced(length, rng) if y else _random_unbalanced(length, rng) for y in labels]
    return _classification(texts, labels, seq_len, ["unbalanced", "balanced"], "brackets")


# -------------------------------------------------------------- sorted_digits


def _is_sorted(text: str) -> bool:
    return all(a <= b for a, b in itertools.pairwise(text))


def _random_sorted_digits(length: int, rng: random.Random) -> str:
    return "".join(sorted(rng.choice(string.digits) for _ in range(length)))


def _random_unsorted_digits(length: int, rng: random.Random) -> str:
    if rng.random() < 0.5:
        # Hard negatives: a sorted string with one adjacent pair swapped (one inversion).
        while True:
            chars = list(_random_sorted_digits(length, rng))
            spots = [i for i in range(length - 1) if chars[i] != chars[i + 1]]
            if spots:
                i = rng.choice(spots)
                chars[i], chars[i + 1] = chars[i + 1], chars[i]
                return "".join(chars)
    while True:
        text = "".join(rng.choice(string.digits) for _ in range(length))
        if not _is_sorted(text):
            return text


def sorted_digits(n: int, seq_len: int, seed: int = 0) -> ClassificationData:
    """Digit strings in non-decreasing order (1) vs not (0)."""
    _check_args(n, seq_len, 2)
    rng = random.Random(seed)
    labels = _balanced_labels(n, 2, rng)
    texts = [_random_sorted_digits(seq_len, rng) if y else _random_unsorted_digits(seq_len, rng) for y in labels]
    return _classification(texts, labels, seq_len, ["unsorted", "sorted"], "sorted_digits")


# ------------------------------------------------------------------- majority

_MAJORITY_SYMBOLS = "abc"


def _random_majority(length: int, target: int, rng: random.Random) -> str:
    while True:
        chars = [rng.choice(_MAJORITY_SYMBOLS) for _ in range(length)]
        counts = sorted((chars.count(s), s) for s in _MAJORITY_SYMBOLS)
        if counts[-1][0] == counts[-2][0]:
            continue  # tie for the top: ambiguous label, draw again
        # Swap the winning symbol with the target one so class balance costs no retries.
        winner, wanted = counts[-1][1], _MAJORITY_SYMBOLS[target]
        swap = {winner: wanted, wanted: winner}
        return "".join(swap.get(ch, ch) for ch in chars)


def majority(n: int, seq_len: int, seed: int = 0) -> ClassificationData:
    """Strings over 'a', 'b', 'c'; the label is the (unique) most frequent symbol."""
    _check_args(n, seq_len, 1)
    rng = random.Random(seed)
    labels = _balanced_labels(n, 3, rng)
    texts = [_random_majority(seq_len, y, rng) for y in labels]
    return _classification(texts, labels, seq_len, list(_MAJORITY_SYMBOLS), "majority")


# ------------------------------------------------------------------- LM tasks


def _lm_data(texts: list[str], seq_len: int, name: str) -> LMData:
    input_ids, attention_mask = encode_batch(texts, seq_len)
    labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
    return LMData(texts, input_ids, attention_mask, labels, name)


def _random_word(rng: random.Random, max_len: int) -> str:
    length = rng.randint(1, max_len)
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(length))


def copy(n: int, seq_len: int, seed: int = 0) -> LMData:
    """``abc|abc``: a random lowercase string, '|', then the same string again."""
    _check_args(n, seq_len, 3)
    rng = random.Random(seed)
    words = [_random_word(rng, (seq_len - 1) // 2) for _ in range(n)]
    return _lm_data([f"{w}|{w}" for w in words], seq_len, "copy")


def reverse(n: int, seq_len: int, seed: int = 0) -> LMData:
    """``abc|cba``: a random lowercase string, '|', then the string reversed."""
    _check_args(n, seq_len, 3)
    rng = random.Random(seed)
    words = [_random_word(rng, (seq_len - 1) // 2) for _ in range(n)]
    return _lm_data([f"{w}|{w[::-1]}" for w in words], seq_len, "reverse")


def counting(n: int, seq_len: int, seed: int = 0) -> LMData:
    """``4567890123...``: digits counting up mod 10 from a random start, seq_len long."""
    _check_args(n, seq_len, 1)
    rng = random.Random(seed)
    starts = [rng.randrange(10) for _ in range(n)]
    texts = ["".join(str((s + i) % 10) for i in range(seq_len)) for s in starts]
    return _lm_data(texts, seq_len, "counting")


TASKS: dict[str, Callable[..., ClassificationData]] = {
    "brackets": brackets,
    "sorted_digits": sorted_digits,
    "majority": majority,
}

LM_TASKS: dict[str, Callable[..., LMData]] = {
    "copy": copy,
    "reverse": reverse,
    "counting": counting,
}

_DESCRIPTIONS = {
    "brackets": "Decide whether a string of '(' and ')' is balanced; negatives are near misses of the same length.",
    "sorted_digits": "Decide whether a string of digits is in non-decreasing order; "
    "many negatives differ by a single swap.",
    "majority": "Name the most frequent letter in a string of 'a', 'b' and 'c' (ties never occur).",
    "copy": "Predict the next byte of 'word|word': after the '|' the model must copy the word.",
    "reverse": "Predict the next byte of 'word|drow': after the '|' the model must reverse the word.",
    "counting": "Predict the next digit of a sequence counting up modulo 10 from a random start.",
}


def describe_task(name: str) -> str:
    """One-sentence description of a classification or LM task, for the UI."""
    try:
        return _DESCRIPTIONS[name]
    except KeyError:
        known = ", ".join(sorted(_DESCRIPTIONS))
        raise KeyError(f"unknown task {name!r}; known tasks: {known}") from None


# --------------------------------------------------------------- stdlib corpus

# Pure-Python-facing stdlib modules that import without side effects. Sorted, so the
# corpus order never depends on how this list is edited.
DEFAULT_CORPUS_MODULES: tuple[str, ...] = tuple(
    sorted(
        [
            "abc",
            "argparse",
            "base64",
            "bisect",
            "calendar",
            "collections",
            "colorsys",
            "contextlib",
            "copy",
            "csv",
            "dataclasses",
            "datetime",
            "decimal",
            "difflib",
            "enum",
            "fractions",
            "functools",
            "heapq",
            "html",
            "inspect",
            "ipaddress",
            "itertools",
            "json",
            "logging",
            "math",
            "numbers",
            "operator",
            "os",
            "pathlib",
            "pprint",
            "queue",
            "random",
            "re",
            "shlex",
            "shutil",
            "statistics",
            "string",
            "struct",
            "textwrap",
            "threading",
            "typing",
            "uuid",
            "zipfile",
        ]
    )
)


def _from_stdlib(obj: object) -> bool:
    # Third-party packages monkeypatch stdlib classes (transformers adds methods to
    # logging.Logger), which would make the corpus depend on what was imported first.
    module = getattr(obj, "__module__", None)
    return module is None or module.split(".")[0] in sys.stdlib_module_names


def _public_sorted(nodes: Iterable[ast.stmt]) -> list[ast.ClassDef | ast.FunctionDef]:
    defs = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    public = [n for n in nodes if isinstance(n, defs) and not n.name.startswith("_")]
    return sorted(public, key=lambda n: n.name)  # stable: redefinitions keep source order


def _source_docs(path: str) -> Iterable[str | None]:
    # Docstrings are read from the module's source, not from live objects: live objects
    # can be monkeypatched (pytest swaps threading.excepthook), so the corpus would depend
    # on what else the process imported. Only top-level definitions are visited, which
    # also skips platform-specific code under ``if sys.platform ...`` blocks.
    with tokenize.open(path) as handle:
        tree = ast.parse(handle.read(), filename=path)
    yield ast.get_docstring(tree)
    for node in _public_sorted(tree.body):
        yield ast.get_docstring(node)
        if isinstance(node, ast.ClassDef):
            for method in _public_sorted(node.body):
                yield ast.get_docstring(method)


def _live_docs(module: object) -> Iterable[str | None]:
    # Fallback for compiled modules (math, itertools) that have no Python source.
    yield inspect.getdoc(module)
    for name in sorted(vars(module)):
        member = vars(module)[name]
        if name.startswith("_") or not _from_stdlib(member):
            continue
        if inspect.isclass(member):
            yield inspect.getdoc(member)
            for attr in sorted(vars(member)):
                func = getattr(member, attr, None)
                if not attr.startswith("_") and inspect.isroutine(func):
                    yield inspect.getdoc(func)
        elif inspect.isroutine(member):
            yield inspect.getdoc(member)


def _module_docs(name: str) -> Iterable[str | None]:
    try:
        module = importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a module that fails to import is just dropped
        return []
    path = getattr(module, "__file__", None)
    if path and path.endswith(".py") and os.path.isfile(path):
        return _source_docs(path)
    return _live_docs(module)


@functools.lru_cache(maxsize=8)
def _build_corpus(max_chars: int, modules: tuple[str, ...]) -> str:
    seen: set[str] = set()
    parts: list[str] = []
    total = 0
    for module_name in modules:
        for doc in _module_docs(module_name):
            doc = (doc or "").strip()
            if not doc or doc in seen:
                continue
            seen.add(doc)
            parts.append(doc)
            total += len(doc) + 2
            if total >= max_chars:
                return "\n\n".join(parts)[:max_chars]
    return "\n\n".join(parts)[:max_chars]


def stdlib_docstring_corpus(max_chars: int = 2_000_000, modules: list[str] | None = None) -> str:
    """Plain-English-ish training text harvested from the local stdlib's docstrings.

    For each module (sorted by name): the module docstring, then its public top-level
    classes (each followed by its public methods) and functions, sorted by name, read from
    the module's source file (compiled modules fall back to ``inspect.getdoc``). Docstrings
    are de-duplicated, joined with blank lines and cut at ``max_chars``. Deterministic
    across calls and processes for a given Python install; modules that fail to import are
    skipped. Raises ``DataError`` if nothing was found.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    names = DEFAULT_CORPUS_MODULES if modules is None else tuple(sorted(set(modules)))
    corpus = _build_corpus(max_chars, names)
    if not corpus:
        raise DataError(f"no docstrings found in modules {list(names)}")
    return corpus


# ----------------------------------------------------------------- user files

PathOrBytes = str | os.PathLike[str] | bytes | bytearray | memoryview
_UTF8_BOM = b"\xef\xbb\xbf"


def _check_size(name: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise DataError(f"{name} is {size:,} bytes, over the limit of {max_bytes:,} bytes")


def _read_raw(source: PathOrBytes, max_bytes: int) -> tuple[bytes, str]:
    """Return (raw bytes, display name); a file's size is checked before it is read."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw = bytes(source)
        _check_size("the uploaded text", len(raw), max_bytes)
        return raw, "the uploaded text"
    path = Path(source)
    name = path.name or str(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block, a device never end
            raise DataError(f"{name} is not a regular file")
        _check_size(name, info.st_size, max_bytes)
        with path.open("rb") as f:  # at most one byte over: /proc files report size 0
            raw = f.read(max_bytes + 1)
    except OSError as exc:
        raise DataError(f"cannot read {name}: {exc.strerror or exc}") from exc
    if len(raw) > max_bytes:
        raise DataError(f"{name} is over the limit of {max_bytes:,} bytes")
    return raw, name


def load_text_file(path_or_bytes: PathOrBytes, max_bytes: int = 5_000_000) -> str:
    """Load user text from a path or raw bytes as UTF-8 (a leading BOM is dropped).

    Raises ``DataError`` when the data is over ``max_bytes``, not valid UTF-8 (naming the
    offset of the first bad byte), or empty / whitespace only.
    """
    raw, name = _read_raw(path_or_bytes, max_bytes)
    skip = len(_UTF8_BOM) if raw.startswith(_UTF8_BOM) else 0
    try:
        text = raw[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        # Offsets are reported against the original bytes, BOM included.
        hint = _encoding_hint(raw)
        hint = f" (it looks like {hint}: save it as UTF-8)" if hint else ""
        raise DataError(f"{name} is not valid UTF-8 at byte {exc.start + skip}{hint}") from None
    if not text.strip():
        raise DataError(f"{name} is empty")
    if text.count("\x00") * 3 >= len(text):  # valid UTF-8, but ASCII as UTF-16 has every other byte NUL
        raise DataError(
            f"{name} is mostly NUL characters: UTF-16 without a byte-order mark, or binary (save it as UTF-8)"
        )
    return text


def _is_csv(source: PathOrBytes, filename_hint: str | None) -> bool:
    if filename_hint is not None:
        return filename_hint.lower().endswith(".csv")
    if isinstance(source, (bytes, bytearray, memoryview)):
        return False
    return Path(source).suffix.lower() == ".csv"


def _encoding_hint(raw: bytes) -> str | None:
    """Which encoding bytes that are not UTF-8 look like: a byte-order mark says it, else many NUL
    bytes on one side of each pair are UTF-16 without one."""
    if raw[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"):
        return "UTF-32"
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "UTF-16"
    head = raw[:4096]
    if len(head) >= 4 and max(head[0::2].count(0), head[1::2].count(0)) * 4 >= len(head):
        return "UTF-16 without a byte-order mark"
    return None


def _csv_lines(text: str) -> list[str]:
    # A cell may be as long as the file (already size-checked); the csv module's default stops at
    # 128 KiB. Strict: an unterminated quote is an error, not the rest of the file in one cell.
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # old Mac files end lines with \r alone
    reader = csv.reader(io.StringIO(text), strict=True)
    try:
        rows = [row for row in reader if row]
    except csv.Error as exc:
        raise DataError(f"could not parse CSV at line {reader.line_num}: {exc}") from exc
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    if "text" in header:
        column, rows = header.index("text"), rows[1:]
    else:
        column = 0  # no 'text' header: the first row is data, not a header
    return [row[column] for row in rows if len(row) > column and row[column].strip()]


def text_lines(text: str) -> list[str]:
    r"""The non-blank lines of a text. Lines end at \n, \r\n or \r only: str.splitlines would also
    cut at form feeds, \x85 and \u2028 inside a line."""
    return [line for line in re.split(r"\r\n|\r|\n", text) if line.strip()]


def load_lines(
    path_or_bytes: PathOrBytes,
    filename_hint: str | None = None,
    max_bytes: int = 5_000_000,
) -> list[str]:
    """Load a list of texts: a CSV's ``text`` column (else its first column), or non-blank lines.

    CSV is detected from ``filename_hint`` (e.g. an upload's name) or the path's suffix.
    Raises ``DataError`` on any :func:`load_text_file` problem or when no lines remain.
    """
    text = load_text_file(path_or_bytes, max_bytes=max_bytes)
    if _is_csv(path_or_bytes, filename_hint):
        lines = _csv_lines(text)
    else:
        lines = [line.rstrip() for line in text_lines(text)]  # rstrip only: indentation matters in code
    if not lines:
        raise DataError("no non-empty lines found")
    return lines


# ---------------------------------------------------------------- LM batching


def split_corpus(text: str, val_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Byte-encode ``text``; the first ``1 - val_fraction`` is train, the rest validation."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    raw = text.encode("utf-8", errors="replace")
    if not raw:
        raise DataError("corpus is empty")
    # frombuffer avoids a Python list of millions of ints; bytearray keeps it writable.
    ids = torch.frombuffer(bytearray(raw), dtype=torch.uint8).long()
    n_train = int(len(ids) * (1.0 - val_fraction))
    return ids[:n_train].clone(), ids[n_train:].clone()


def get_batch(
    ids: torch.Tensor,
    block_size: int,
    batch_size: int,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """nanoGPT-style random windows: x = ids[o:o+block], y = ids[o+1:o+1+block].

    Offsets come only from ``generator``, so equal generator states give equal batches.
    """
    if ids.dim() != 1:
        raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}")
    if block_size < 1 or batch_size < 1:
        raise ValueError("block_size and batch_size must be >= 1")
    if len(ids) < block_size + 1:
        raise DataError(f"corpus has {len(ids):,} tokens; need at least block_size + 1 = {block_size + 1:,}")
    offsets = torch.randint(len(ids) - block_size, (batch_size,), generator=generator)
    index = (offsets[:, None] + torch.arange(block_size)).to(ids.device)
    return ids[index], ids[index + 1]


# -------------------------------------------------------------- sample texts

_SAMPLE_TEXTS: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "A journey of a thousand miles begins with a single step.",
    "Actions speak louder than words.",
    "Better late than never, but never late is better.",
    "When in Rome, do as the Romans do.",
    "Every cloud has a silver lining.",
    "The early bird catches the worm, but the second mouse gets the cheese.",
    "Don't count your chickens before they hatch.",
    "To be, or not to be, that is the question.",
    "It was the best of times, it was the worst of times.",
    "Call me Ishmael.",
    "All happy families are alike; each unhappy family is unhappy in its own way.",
    "The cat sat on the mat.",
    "Paris is the capital of France, and Berlin is the capital of Germany.",
    "Water boils at 100 degrees Celsius at sea level.",
    "She sells seashells by the seashore.",
    "I left my umbrella on the train this morning, so I got soaked.",
    "Can you recommend a good book about the history of mathematics?",
    "Please remember to water the plants while I'm away.",
    "The meeting has been moved from Tuesday to Thursday at 3 pm.",
    "def add(a, b):\n    return a + b",
    "for i in range(10): print(i * i)",
    "import torch; x = torch.randn(2, 3)",
    "SELECT name, age FROM users WHERE age > 30 ORDER BY name;",
    "if (x != null && x.length > 0) { return x[0]; }",
    'console.log("Hello, world!");',
    '<div class="card"><p>Hello</p></div>',
    "3.14159 26535 89793 23846 26433 83279",
    "1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144",
    "2 + 2 = 4, and 12 * 12 = 144.",
    "The invoice total is $1,234.56, due on 2024-03-15.",
    "Call +1 (555) 010-9999 between 09:00 and 17:30.",
    "((()))()(()())",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "I love pizza 🍕 and coffee ☕!",
    "Great job! 🎉🎉🎉",
    "东京是日本的首都。",
    "こんにちは、世界！",
    "Привет, как дела?",
    "Ça va? Très bien, merci — et toi?",
)


def sample_texts() -> list[str]:
    """A fixed, varied set of short texts (prose, code, numbers, emoji, CJK) for demos."""
    return list(_SAMPLE_TEXTS)
