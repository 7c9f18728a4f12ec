"""Training: one plain loop for causal LM and sequence classification, a stoppable background job
for the app, and a `transformers.Trainer` for scaling out with torchrun / accelerate (DDP).

`train(model, data, config, callback, should_stop)` runs AdamW with linear warm-up then cosine decay,
gradient clipping, evaluation on the same fixed batches each time, early stop and safetensors
checkpoints. Progress goes to `callback` as plain `TrainingEvent`s; every evaluation carries a
`RouteSnapshot` (where routes start, how often each neuron fires), so a user can watch the routing
organise itself. The loop takes any Hugging Face model whose forward takes `input_ids` and returns
`logits` (the quality benchmark trains GPT-2 with it), so comparisons share one recipe.

Data: a text (byte-level LM on random windows, nanoGPT's recipe), a pair of id tensors, or the
synthetic tasks of `genesis.data` (`ClassificationData`, `LMData`). `load_data(name)` builds the
built-in ones by name.
"""

from __future__ import annotations

import atexit
import json
import math
import numbers
import os
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from . import data as gdata
from .configuration import GenesisConfig

if TYPE_CHECKING:  # the model code loads on first use
    from .modeling import Genesis

CORPUS = "stdlib"  # the built-in text: the standard library's docstrings
DATA_SOURCES = (CORPUS, *gdata.TASKS, *gdata.LM_TASKS)


# ---------------------------------------------------------------------------------------------
# Configuration


MAX_LR = 1e6
MAX_SNAPSHOT_SAMPLES = 4096  # each snapshot routes them all, alone, at every evaluation


@dataclass
class TrainingConfig:
    """How to train. Defaults follow nanoGPT's small CPU recipe (block 64, lr 1e-3, cosine decay)."""

    steps: int = 500
    batch_size: int = 12
    lr: float = 1e-3
    warmup: int = 50  # steps of linear warm-up from 0 to lr
    min_lr: float = 1e-4  # where the cosine decay ends, at `steps`
    weight_decay: float = 0.1  # on matrices only; biases, norms and thresholds are not decayed
    beta2: float = 0.99
    grad_clip: float | None = 1.0
    eval_every: int = 50
    eval_batches: int = 10
    eval_at_start: bool = True  # an evaluation (and route snapshot) of the untrained model
    early_stop_patience: int | None = None  # evaluations without a better validation loss
    seed: int = 0  # batch order, dropout
    eval_seed: int = 1  # which validation windows are the fixed evaluation batches
    block_size: int = 64  # window length for text corpora
    val_fraction: float = 0.1
    snapshot_samples: int = 24  # validation inputs routed for each snapshot (0: none; a task: at most all of them)
    output_dir: str | None = None  # final model (+ checkpoints) saved here when set
    checkpoint_every: int | None = None

    def __post_init__(self) -> None:
        """Every field checked by name when the recipe is made, not deep inside train()."""
        for name in ("steps", "batch_size", "eval_every", "eval_batches", "block_size"):
            _check_whole(name, getattr(self, name), low=1)
        _check_whole("warmup", self.warmup, low=0)
        _check_whole("snapshot_samples", self.snapshot_samples, low=0, high=MAX_SNAPSHOT_SAMPLES)
        for name in ("seed", "eval_seed"):
            _check_whole(name, getattr(self, name), low=0, high=2**63 - 1)
        for name in ("early_stop_patience", "checkpoint_every"):
            if getattr(self, name) is not None:
                _check_whole(name, getattr(self, name), low=1, none="None or ")
        for name in ("lr", "min_lr", "weight_decay", "beta2", "val_fraction"):
            value = getattr(self, name)
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not 0 < self.lr <= MAX_LR:  # beyond, AdamW's float32 arithmetic overflows before any step
            raise ValueError(f"lr must be > 0 and at most {MAX_LR:g}, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.beta2 < 1:
            raise ValueError(f"beta2 must be in [0, 1), got {self.beta2}")
        clip = self.grad_clip
        if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip > 0):
            raise ValueError(f"grad_clip must be None (no clipping) or a number > 0, got {clip!r}")
        if clip is not None and not math.isfinite(clip):
            raise ValueError(f"grad_clip must be finite, got {clip!r}")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"min_lr must be in [0, lr={self.lr}], got {self.min_lr}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if not isinstance(self.eval_at_start, bool):
            raise ValueError(f"eval_at_start must be True or False, got {self.eval_at_start!r}")
        if self.output_dir is not None and not isinstance(self.output_dir, (str, os.PathLike)):
            raise ValueError(f"output_dir must be None or a path, got {self.output_dir!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_whole(name: str, value: Any, low: int, high: int | None = None, none: str = "") -> None:
    """An int (numpy's too; not a bool, not 2.5) in [low, high]; the message names the field."""
    whole = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if not whole or value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {none}an integer {bound}, got {value!r}")


def learning_rate(step: int, config: TrainingConfig) -> float:
    """Linear warm-up to config.lr over `warmup` steps, then cosine decay to min_lr at `steps`."""
    if step < config.warmup:
        return config.lr * (step + 1) / (config.warmup + 1)
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.min_lr + 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))) * (config.lr - config.min_lr)


# ---------------------------------------------------------------------------------------------
# Data


@dataclass
class Batch:
    """One batch. `targets`: next-token ids aligned with the inputs (text windows; the loop computes
    the loss on every position). `labels`: handed to the model, which computes its own loss."""

    input_ids: torch.Tensor  # (B, T)
    targets: torch.Tensor | None = None  # (B, T)
    labels: torch.Tensor | None = None  # (B,) classes, or (B, T) token ids with -100 for padding
    attention_mask: torch.Tensor | None = None  # (B, T), 1 for real tokens

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(None if t is None else t.to(device) for t in (getattr(self, f.name) for f in fields(self))))

    def __len__(self) -> int:
        return self.input_ids.shape[0]


class CorpusTask:
    """Next-byte prediction on random windows of a token stream (nanoGPT's get_batch)."""

    kind = "lm"
    n_classes = None
    class_names = None

    def __init__(self, train_ids: torch.Tensor, val_ids: torch.Tensor, block_size: int, name: str = "text"):
        for split, ids in (("training", train_ids), ("validation", val_ids)):
            if len(ids) < block_size + 1:
                count = f"{len(ids):,} token{'' if len(ids) == 1 else 's'}"
                raise gdata.DataError(
                    f"the {split} part of the text (a text is split into a training and a validation part) has "
                    f"{count}; a window (block_size) of {block_size} needs at least {block_size + 1}: use a longer "
                    "text or a smaller window"
                )
        self.train_ids, self.val_ids, self.block_size, self.name = train_ids, val_ids, block_size, name

    @property
    def seq_len(self) -> int:
        return self.block_size

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        x, y = gdata.get_batch(self.train_ids, self.block_size, batch_size, generator)
        return Batch(x, targets=y)

    def eval_batches(self, n: int, batch_size: int, seed: int) -> list[Batch]:
        """The same windows on every call with the same seed: every evaluation compares like with like."""
        g = torch.Generator().manual_seed(seed)
        return [Batch(*gdata.get_batch(self.val_ids, self.block_size, batch_size, g)) for _ in range(n)]

    def describe(self) -> str:
        return f"{self.name}: {len(self.train_ids):,} training / {len(self.val_ids):,} validation bytes"


class ExampleTask:
    """Fixed rows (a synthetic task): random training rows per step, the held-out rows for evaluation."""

    def __init__(
        self,
        train: gdata.ClassificationData | gdata.LMData,
        val: gdata.ClassificationData | gdata.LMData,
        name: str | None = None,
    ):
        if not len(train) or not len(val):
            raise gdata.DataError("a task needs at least one training and one validation example")
        self.train, self.val, self.name = train, val, name or train.name
        self.kind = "classification" if isinstance(train, gdata.ClassificationData) else "lm"
        self.n_classes = getattr(train, "n_classes", None)
        self.class_names = getattr(train, "class_names", None)

    @property
    def seq_len(self) -> int:
        return self.train.input_ids.shape[1]

    @staticmethod
    def _rows(rows: gdata.ClassificationData | gdata.LMData, index: torch.Tensor | slice) -> Batch:
        return Batch(rows.input_ids[index], labels=rows.labels[index], attention_mask=rows.attention_mask[index])

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        return self._rows(self.train, torch.randint(len(self.train), (batch_size,), generator=generator))

    def eval_batches(self, n: int, batch_size: int, seed: int) -> list[Batch]:
        starts = range(0, min(len(self.val), n * batch_size), batch_size)
        return [self._rows(self.val, slice(s, s + batch_size)) for s in starts]

    def describe(self) -> str:
        return f"{self.name}: {len(self.train):,} training / {len(self.val):,} validation examples"


Task = CorpusTask | ExampleTask


def _split_rows(rows, val_fraction: float):
    n_val = max(1, int(len(rows) * val_fraction))
    cut = len(rows) - n_val

    def part(sl: slice):
        tensors = {
            f.name: getattr(rows, f.name)[sl] for f in fields(rows) if isinstance(getattr(rows, f.name), torch.Tensor)
        }
        return replace(rows, texts=rows.texts[sl], **tensors)

    return part(slice(0, cut)), part(slice(cut, None))


def as_task(data: Any, block_size: int = 64, val_fraction: float = 0.1, name: str = "text") -> Task:
    """A task from: a text; (train_ids, val_ids); a ClassificationData / LMData (its last rows held
    out) or a (train, validation) pair of them; or a task already."""
    if isinstance(data, (CorpusTask, ExampleTask)):
        return data
    if isinstance(data, str):
        return CorpusTask(*gdata.split_corpus(data, val_fraction), block_size, name)
    if isinstance(data, (gdata.ClassificationData, gdata.LMData)):
        return ExampleTask(*_split_rows(data, val_fraction))
    if isinstance(data, tuple) and len(data) == 2:
        if all(isinstance(d, torch.Tensor) for d in data):
            return CorpusTask(data[0], data[1], block_size, name)
        if all(isinstance(d, (gdata.ClassificationData, gdata.LMData)) for d in data):
            return ExampleTask(*data)
    raise TypeError(f"cannot train on {type(data).__name__}: give a text, (train_ids, val_ids) or task data")


def load_data(
    name: str, block_size: int = 64, examples: int = 4000, seq_len: int = 24, seed: int = 0, val_fraction: float = 0.1
) -> Task:
    """A built-in data source by name: "stdlib" (docstring corpus) or a synthetic task of genesis.data."""
    if name == CORPUS:
        return as_task(gdata.stdlib_docstring_corpus(), block_size, val_fraction, "stdlib docstrings")
    make = gdata.TASKS.get(name) or gdata.LM_TASKS.get(name)
    if make is None:
        raise ValueError(f"unknown data {name!r}; built-in: {', '.join(DATA_SOURCES)}")
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 2:
        raise ValueError(f"examples must be an integer >= 2 (one to train on, one to validate), got {examples!r}")
    n_val = max(1, int(examples * val_fraction))
    # A different seed for the held-out rows; identical strings can recur, as in any sampled task.
    return ExampleTask(make(examples - n_val, seq_len, seed), make(n_val, seq_len, seed + 1_000_003))


def config_for_task(config: GenesisConfig, task: Task) -> GenesisConfig:
    """The config with the output part the task needs (a classifier with one output per class, or an LM)."""
    _check_reads_text(config.n_input)
    values = config.user_dict()
    # The data is bytes: end-of-text and pad are the byte tokenizer's, so a saved model's
    # generation_config stops at end-of-text and pipelines pad with the right id.
    names: dict[str, Any] = dict(eos_token_id=gdata.EOS_ID, pad_token_id=gdata.PAD_ID)
    if task.kind == "classification":
        values.update(n_output="sequence_classifier", n_outputs=task.n_classes)
        if task.class_names and len(task.class_names) == task.n_classes:  # shown instead of "class 0", ...
            names["id2label"] = dict(enumerate(task.class_names))
    else:
        values.update(n_output="causal_lm", n_outputs=1)
    values["n_pos_size"] = max(values["n_pos_size"], task.seq_len)
    values["n_vocab_size"] = max(values["n_vocab_size"], gdata.BYTE_VOCAB_SIZE)
    return GenesisConfig(**values, **names)


def _check_reads_text(n_input: str) -> None:
    if n_input != "reading":
        raise ValueError(f"training data is text: it needs n_input='reading', this config has n_input={n_input!r}")


def check_fits(model: torch.nn.Module, task: Task) -> None:
    """Refuse, with a message naming the field, a model that cannot take the task's inputs."""
    config = model.config
    _check_reads_text(getattr(config, "n_input", "reading"))  # GPT-2 (the benchmark's) reads tokens
    positions = getattr(config, "n_pos_size", None) or getattr(config, "n_positions", None)
    if positions is not None and task.seq_len > positions:
        raise ValueError(f"inputs of {task.seq_len} tokens are longer than the model's {positions} positions")
    vocab = getattr(config, "vocab_size", None)
    if vocab is not None and vocab < gdata.BYTE_IDS:
        raise ValueError(f"the data uses byte ids up to 255; the model's vocabulary has {vocab}")
    output = getattr(config, "n_output", None)
    wanted = "sequence_classifier" if task.kind == "classification" else "causal_lm"
    if output is not None and output != wanted:
        raise ValueError(f"a {task.kind} task needs n_output={wanted!r}, the model has {output!r}")
    if task.kind == "classification" and getattr(config, "n_outputs", task.n_classes) not in (1, task.n_classes):
        raise ValueError(f"{task.n_classes} classes need n_outputs={task.n_classes}, the model has {config.n_outputs}")


# ---------------------------------------------------------------------------------------------
# Loss, evaluation and route snapshots


def batch_loss(model: torch.nn.Module, batch: Batch):
    """(loss, model output). Text windows: cross entropy on every position against the next byte."""
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels)
    if batch.targets is None:
        return out.loss, out
    logits = out.logits  # (B, T, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1)), out


def _correct(logits: torch.Tensor, labels: torch.Tensor) -> int:
    predicted = (logits[:, 0] > 0).long() if logits.shape[-1] == 1 else logits.argmax(dim=-1)
    return int((predicted == labels.view(-1)).sum())


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: list[Batch]) -> tuple[float, float | None]:
    """Mean loss over the batches in eval mode, and accuracy when the labels are classes."""
    if not batches:
        raise ValueError("no batches to evaluate")
    was_training = model.training
    model.eval()
    losses, correct, total = [], 0, 0
    for batch in batches:
        loss, out = batch_loss(model, batch)
        losses.append(float(loss))
        if batch.labels is not None and batch.labels.dim() == 1:
            correct += _correct(out.logits, batch.labels)
            total += len(batch)
    model.train(was_training)
    return sum(losses) / len(losses), (correct / total if total else None)


@dataclass
class RouteSnapshot:
    """How the routing looks at one step, over a fixed set of inputs each routed alone."""

    step: int
    samples: int
    start: list[list[float]]  # [section][neuron]: fraction of inputs whose route starts there
    firing: list[list[float]]  # [section][neuron]: fraction of inputs whose route goes through it
    route_length: list[float]  # [section]: mean neurons fired per input
    distinct_routes: int  # different whole routes (all sections) among the inputs
    by_class: dict[str, list[list[float]]] = field(default_factory=dict)  # classification: firing per class


def sample_routes(model: Genesis, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
    """Each input's route as if run alone, padding removed: [input][section] -> neurons in firing order."""
    rows = [ids if attention_mask is None else ids[attention_mask[i].bool()] for i, ids in enumerate(input_ids)]
    by_length: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        by_length.setdefault(len(row), []).append(i)
    routes: list = [None] * len(rows)
    for members in by_length.values():  # per-sample routing: each row as if alone, in batched ops
        trace = model.routes(torch.stack([rows[i] for i in members]), routing="sample")
        for i, route in zip(members, trace.sample_routes()):
            routes[i] = route
    return routes


def route_statistics(routes: list[list[list[int]]], n_sections: int, n_neurons: int):
    """(start, firing, mean length) per section from routes [input][section] -> neurons."""
    n = max(1, len(routes))
    start = [[0.0] * n_neurons for _ in range(n_sections)]
    firing = [[0.0] * n_neurons for _ in range(n_sections)]
    length = [0.0] * n_sections
    for route in routes:
        for section, neurons in enumerate(route):
            if neurons:
                start[section][neurons[0]] += 1 / n
            for neuron in neurons:
                firing[section][neuron] += 1 / n
            length[section] += len(neurons) / n
    return start, firing, length


def route_snapshot(
    model: Genesis,
    batch: Batch,
    step: int = 0,
    class_names: list[str] | None = None,
) -> RouteSnapshot:
    """Start-neuron distribution and firing frequency of `model` (eval mode) on the batch's inputs."""
    config = model.config
    was_training = model.training
    model.eval()
    routes = sample_routes(model, batch.input_ids, batch.attention_mask)
    model.train(was_training)
    start, firing, length = route_statistics(routes, config.n_sections, config.n_neurons)
    by_class = {}
    if class_names and batch.labels is not None and batch.labels.dim() == 1:
        labels = batch.labels.tolist()
        for c, name in enumerate(class_names):
            members = [r for r, label in zip(routes, labels) if label == c]
            if members:
                by_class[name] = route_statistics(members, config.n_sections, config.n_neurons)[1]
    distinct = len(Counter(json.dumps(r) for r in routes))
    return RouteSnapshot(step, len(routes), start, firing, length, distinct, by_class)


def is_routed(model: torch.nn.Module) -> bool:
    """Whether the model has Genesis routing to snapshot (the benchmark also trains GPT-2)."""
    return getattr(model.config, "model_type", None) == "genesis"


# ---------------------------------------------------------------------------------------------
# The loop


@dataclass
class TrainingEvent:
    """Progress after one step (step 0: before training). Evaluation steps add val_loss and a snapshot."""

    step: int
    steps: int
    train_loss: float | None
    lr: float
    tokens_per_s: float  # training throughput so far (forward + backward + update)
    elapsed: float  # seconds since the start, evaluations included
    val_loss: float | None = None
    val_accuracy: float | None = None
    snapshot: RouteSnapshot | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainingResult:
    """What a run did: every event, the final and best losses, why it ended."""

    task: str
    config: dict[str, Any]
    events: list[TrainingEvent] = field(default_factory=list)
    steps_done: int = 0
    stop_reason: str = "running"  # then "completed", "early stop", "stopped" or DIVERGED (a checkpoint: "running")
    seconds: float = 0.0
    tokens: int = 0

    @property
    def evaluations(self) -> list[TrainingEvent]:
        return [e for e in self.events if e.val_loss is not None]

    @property
    def final_train_loss(self) -> float | None:
        """Mean training loss over the last 5% of steps (one step is noisy)."""
        losses = [e.train_loss for e in self.events if e.train_loss is not None]
        tail = losses[-max(1, len(losses) // 20) :]
        return sum(tail) / len(tail) if tail else None

    @property
    def final_val_loss(self) -> float | None:
        return self.evaluations[-1].val_loss if self.evaluations else None

    @property
    def best_val_loss(self) -> float | None:
        return min((e.val_loss for e in self.evaluations), default=None)

    def __repr__(self) -> str:  # the generated one printed every event: thousands of lines in a notebook
        def loss(value: float | None) -> str:
            return "None" if value is None else f"{value:.4f}"

        return (
            f"TrainingResult(task={self.task!r}, steps_done={self.steps_done}, stop_reason={self.stop_reason!r}, "
            f"final_train_loss={loss(self.final_train_loss)}, final_val_loss={loss(self.final_val_loss)}, "
            f"best_val_loss={loss(self.best_val_loss)}, seconds={self.seconds:.1f}, tokens={self.tokens}, "
            f"events={len(self.events)})"
        )

    def summary(self) -> dict[str, Any]:
        """The numbers worth keeping with a model (training.json), without the per-step events."""
        last = self.evaluations[-1] if self.evaluations else None
        return dict(
            task=self.task,
            training=self.config,
            steps_done=self.steps_done,
            stop_reason=self.stop_reason,
            seconds=round(self.seconds, 1),
            tokens=self.tokens,
            final_train_loss=self.final_train_loss,
            final_val_loss=self.final_val_loss,
            best_val_loss=self.best_val_loss,
            final_val_accuracy=last.val_accuracy if last else None,
            routing=asdict(last.snapshot) if last and last.snapshot else None,
            curve=[dict(step=e.step, train_loss=e.train_loss, val_loss=e.val_loss) for e in self.evaluations],
        )


def make_optimizer(model: torch.nn.Module, config: TrainingConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices (2-D and up) only, as nanoGPT does."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, config.beta2))


def optimization_step(model: torch.nn.Module, optimizer, batch: Batch, grad_clip: float | None) -> float:
    """Forward, backward, clip, update; the batch's loss."""
    loss, _ = batch_loss(model, batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def save_checkpoint(model: torch.nn.Module, folder: str | Path, info: dict[str, Any] | None = None) -> Path:
    """save_pretrained (config.json + model.safetensors), plus training.json with `info`."""
    folder = Path(folder)
    model.save_pretrained(folder)
    if info is not None:
        (folder / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    return folder


class EarlyStopping:
    """Stop after `patience` evaluations in a row without a better validation loss (None: never)."""

    def __init__(self, patience: int | None):
        self.patience, self.best, self.bad = patience, math.inf, 0

    def update(self, val_loss: float) -> bool:
        if val_loss < self.best:
            self.best, self.bad = val_loss, 0
        else:
            self.bad += 1
        return self.patience is not None and self.bad >= self.patience


class _Evaluator:
    """Fixed evaluation batches and snapshot inputs, and the early-stop bookkeeping."""

    def __init__(self, model, task: Task, config: TrainingConfig, device):
        self.model, self.task, self.config = model, task, config
        self.batches = [
            b.to(device) for b in task.eval_batches(config.eval_batches, config.batch_size, config.eval_seed)
        ]
        n = config.snapshot_samples if is_routed(model) else 0
        # Their own draw, not a slice of the first evaluation batch: that capped them at batch_size.
        self.snapshot_batch = task.eval_batches(1, n, config.eval_seed)[0].to(device) if n else None
        self.early_stop = EarlyStopping(config.early_stop_patience)

    def __call__(self, event: TrainingEvent) -> bool:
        """Fill the event's evaluation fields; True when early stop says enough."""
        event.val_loss, event.val_accuracy = evaluate(self.model, self.batches)
        if self.snapshot_batch is not None:
            event.snapshot = route_snapshot(self.model, self.snapshot_batch, event.step, self.task.class_names)
        return self.early_stop.update(event.val_loss)


DIVERGED = "diverged"  # a loss became NaN or infinite (learning rate too high?)


def train(
    model: torch.nn.Module,
    data: Any,
    config: TrainingConfig | None = None,
    callback: Callable[[TrainingEvent], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainingResult:
    """Train `model` in place on `data` (see `as_task`) and return what happened; the model ends in eval mode.

    A loss that becomes NaN or infinite stops the run (stop_reason DIVERGED) and the final model is
    not saved to config.output_dir.

    Batches and dropout masks come from a private generator seeded with config.seed: a run is
    reproducible on one machine, whatever other threads draw meanwhile (on a GPU, dropout uses the
    device's generator, seeded with config.seed).
    """
    config = config or TrainingConfig()
    task = as_task(data, config.block_size, config.val_fraction)
    check_fits(model, task)
    from .modeling import dropout_generator

    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(config.seed)  # batches and dropout masks
    if device.type == "cuda":
        torch.cuda.manual_seed(config.seed)  # dropout there draws from the device's own generator
    evaluator = _Evaluator(model, task, config, device)
    optimizer = make_optimizer(model, config)
    result = TrainingResult(task.describe(), config.to_dict())
    began, train_seconds = time.perf_counter(), 0.0

    def report(event: TrainingEvent) -> None:
        result.events.append(event)
        if callback is not None:
            callback(event)

    if config.eval_at_start:
        event = TrainingEvent(0, config.steps, None, learning_rate(0, config), 0.0, 0.0)
        evaluator(event)
        event.elapsed = time.perf_counter() - began  # a large model's first evaluation takes a while
        report(event)
    with dropout_generator(generator):  # dropout masks from this run's stream, not torch's global one
        model.train()
        for step in range(1, config.steps + 1):
            if should_stop is not None and should_stop():
                result.stop_reason = "stopped"
                break
            lr = learning_rate(step - 1, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = task.sample(config.batch_size, generator).to(device)
            tick = time.perf_counter()
            loss = optimization_step(model, optimizer, batch, config.grad_clip)
            train_seconds += time.perf_counter() - tick
            result.tokens += batch.input_ids.numel()
            result.steps_done = step
            event = TrainingEvent(step, config.steps, loss, lr, result.tokens / train_seconds, 0.0)
            early_stop = False
            if step % config.eval_every == 0 or step == config.steps:
                early_stop = evaluator(event)
            event.elapsed = time.perf_counter() - began
            report(event)
            if not all(math.isfinite(v) for v in (loss, event.val_loss or 0.0)):
                result.stop_reason = DIVERGED  # the weights are ruined: stop, and do not save them
                break
            if config.output_dir and config.checkpoint_every and step % config.checkpoint_every == 0:
                save_checkpoint(model, Path(config.output_dir) / f"checkpoint-{step}", result.summary())
            if early_stop:
                result.stop_reason = "early stop"
                break
        if result.stop_reason == "stopped" and result.steps_done and result.events[-1].val_loss is None:
            # Stopped between evaluations: evaluate the model as it is, so the last point is its own.
            last = result.events[-1]
            event = TrainingEvent(last.step, config.steps, None, last.lr, last.tokens_per_s, 0.0)
            evaluator(event)
            event.elapsed = time.perf_counter() - began
            report(event)
    if result.stop_reason == "running":
        result.stop_reason = "completed"
    model.eval()
    result.seconds = time.perf_counter() - began
    if config.output_dir and result.stop_reason != DIVERGED:
        save_checkpoint(model, config.output_dir, result.summary())
    return result


def diverged_message(result: TrainingResult) -> str:
    return (
        f"the loss became NaN or infinite at step {result.steps_done} (lr {result.config.get('lr')}): "
        "the weights are ruined, so the model was not kept; try a lower learning rate"
    )


# ---------------------------------------------------------------------------------------------
# In the background (the app)


_started: weakref.WeakSet[TrainingJob] = weakref.WeakSet()
EXIT_WAIT_S = 30.0


@atexit.register
def _stop_jobs_at_exit() -> None:
    """A job's daemon thread still inside torch when the interpreter shuts down aborts the process
    ("terminate called without an active exception", e.g. a stopped app server): stop every job
    between two steps, as Stop does, and wait for it."""
    running = [job for job in list(_started) if job.running]
    for job in running:
        job.stop()
    deadline = time.monotonic() + EXIT_WAIT_S
    for job in running:
        job.wait(max(0.0, deadline - time.monotonic()))


class TrainingJob:
    """train() in a daemon thread: progress readable at any time, stoppable between steps.

    Holds its own model, so several jobs (one per browser session) never share weights. `slots`, a
    semaphore shared by all jobs of a process, bounds how many train at once; the others wait.

    `owner_alive` (e.g. "is this browser session still connected?") is asked about once a second;
    after it has said no for `grace` seconds in a row, the job stops as if Stop were pressed and
    `abandoned` is set, so a closed tab does not keep a slot busy for thousands of steps.
    """

    OWNER_CHECK_S = 1.0

    def __init__(
        self,
        model: torch.nn.Module,
        data: Any,
        config: TrainingConfig,
        slots: threading.Semaphore | None = None,
        owner_alive: Callable[[], bool] | None = None,
        grace: float = 120.0,
    ):
        if not (isinstance(grace, numbers.Real) and grace >= 0 and math.isfinite(grace)):
            raise ValueError(f"grace must be a finite number of seconds >= 0, got {grace!r}")
        self.model, self.data, self.config, self.slots = model, data, config, slots
        self.owner_alive, self.grace = owner_alive, grace
        self.result: TrainingResult | None = None
        self.error: str | None = None
        self.waiting = slots is not None
        self.abandoned = False
        self._owner_checked = -math.inf
        self._owner_gone_since: float | None = None
        self._events: list[TrainingEvent] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="genesis-training", daemon=True)

    def start(self) -> TrainingJob:
        _started.add(self)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def done(self) -> bool:
        return self._thread.ident is not None and not self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set() and self.running

    def events(self) -> list[TrainingEvent]:
        with self._lock:
            return list(self._events)

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return self.done

    def _record(self, event: TrainingEvent) -> None:
        with self._lock:
            self._events.append(event)

    @property
    def cancelled(self) -> bool:
        """Stopped before its first step (waiting for a slot, or during the first evaluation): nothing
        was trained, so there is no model to hand on."""
        if not self.done or self.error is not None:
            return False
        return self.result is None or self.result.steps_done == 0

    @property
    def publishable(self) -> bool:
        """Finished with a trained model to hand on: not failed or diverged, not cancelled."""
        return self.done and self.error is None and not self.cancelled

    def _should_stop(self) -> bool:
        """Stop pressed, or the owner gone for `grace` seconds (checked at most once a second)."""
        if self._stop.is_set():
            return True
        now = time.monotonic()
        if self.owner_alive is None or now - self._owner_checked < self.OWNER_CHECK_S:
            return False
        self._owner_checked = now
        if self.owner_alive():
            self._owner_gone_since = None
        elif self._owner_gone_since is None:
            self._owner_gone_since = now
        elif now - self._owner_gone_since >= self.grace:
            self.abandoned = True
            self._stop.set()
        return self._stop.is_set()

    def _run(self) -> None:
        if self.slots is not None:
            while not self.slots.acquire(timeout=0.2):
                if self._should_stop():
                    self.waiting = False
                    self.model.eval()
                    return
            self.waiting = False
        try:
            result = train(self.model, self.data, self.config, self._record, self._should_stop)
            if result.stop_reason == DIVERGED:  # the error first: a reader may look at result any time
                self.error = diverged_message(result)
            self.result = result
        except Exception as e:  # noqa: BLE001 - shown to the user instead of dying silently in a thread
            self.error = f"{type(e).__name__}: {e}"
            self.model.eval()
        finally:
            if self.slots is not None:
                self.slots.release()


# ---------------------------------------------------------------------------------------------
# transformers.Trainer (torchrun / accelerate launch, DDP)


class _Rows(torch.utils.data.Dataset):
    """Examples as the dicts a Trainer collates: input_ids, labels (, attention_mask)."""

    def __init__(self, input_ids: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor | None = None):
        self.input_ids, self.labels, self.attention_mask = input_ids, labels, attention_mask

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = {"input_ids": self.input_ids[i], "labels": self.labels[i]}
        if self.attention_mask is not None:
            row["attention_mask"] = self.attention_mask[i]
        return row


def trainer_datasets(task: Task) -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset]:
    """(train, eval) datasets. Text: consecutive windows with labels = inputs (the model shifts them)."""
    if isinstance(task, CorpusTask):

        def windows(ids: torch.Tensor) -> _Rows:
            n = len(ids) // task.block_size
            chunks = ids[: n * task.block_size].view(n, task.block_size)
            return _Rows(chunks, chunks)

        return windows(task.train_ids), windows(task.val_ids)
    return tuple(_Rows(d.input_ids, d.labels, d.attention_mask) for d in (task.train, task.val))


def make_trainer(model: torch.nn.Module, data: Any, config: TrainingConfig, output_dir: str | Path, **arguments: Any):
    """A transformers.Trainer with the same recipe (AdamW, warm-up + cosine to min_lr, clipping).

    Run it under `torchrun --nproc_per_node 2 -m genesis train --trainer hf ...` or `accelerate launch`
    for DDP. Routing leaves neurons unused in a step, so DDP must look for unused parameters.
    """
    from transformers import Trainer, TrainingArguments

    task = as_task(data, config.block_size, config.val_fraction)
    check_fits(model, task)
    train_set, eval_set = trainer_datasets(task)
    cpu = not torch.cuda.is_available()
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1  # launched by torchrun / accelerate
    args = dict(
        output_dir=str(output_dir),
        max_steps=config.steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        learning_rate=config.lr,
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr": config.min_lr},
        warmup_steps=config.warmup,
        weight_decay=config.weight_decay,
        adam_beta2=config.beta2,
        max_grad_norm=config.grad_clip or 0.0,
        eval_strategy="steps",
        eval_steps=config.eval_every,
        save_strategy="steps" if config.checkpoint_every else "no",
        save_steps=config.checkpoint_every or 500,
        logging_steps=max(1, min(config.eval_every, 50)),
        seed=config.seed,
        report_to="none",
        use_cpu=cpu,
        ddp_backend="gloo" if cpu and distributed else None,
        ddp_find_unused_parameters=True,
        dataloader_num_workers=0,
    )
    args.update(arguments)
    return Trainer(model=model, args=TrainingArguments(**args), train_dataset=train_set, eval_dataset=eval_set)


# ---------------------------------------------------------------------------------------------
# The demo model in assets/demo


DEMO_COMMAND = "python3 dev.py demo  (= python -m genesis demo)"


def demo_recipe(steps: int = 1000) -> tuple[GenesisConfig, TrainingConfig]:
    """The demo model: the app's default config (original routing, 128 positions), a byte-level LM on
    the docstrings. Trainable routing learned slightly lower loss but shut almost every hop off (routes of
    one neuron); with the original routing, routes stay 4-7 neurons long and differ between kinds of text."""
    from .configuration import preset

    config = preset("app", n_pos_size=128, eos_token_id=gdata.EOS_ID, pad_token_id=gdata.PAD_ID)
    recipe = TrainingConfig(
        steps=steps, batch_size=8, block_size=128, lr=2e-3, warmup=50, min_lr=1e-4, eval_every=100, eval_batches=10
    )
    return config, recipe


def build_demo(folder: str | Path, steps: int = 1000, callback: Callable[[TrainingEvent], None] | None = None):
    """Train the demo model from scratch and save it, with training.json, in `folder`."""
    from .modeling import Genesis

    config, recipe = demo_recipe(steps)
    model = Genesis(config)
    result = train(model, load_data(CORPUS, block_size=recipe.block_size), recipe, callback)
    info = result.summary()
    info.update(
        data="the Python standard library's docstrings (genesis.data.stdlib_docstring_corpus), byte level",
        command=DEMO_COMMAND,
        summary=f"byte-level LM on stdlib docstrings, {result.steps_done} steps, val loss {result.final_val_loss:.2f}",
    )
    save_checkpoint(model, folder, info)
    return model, info
