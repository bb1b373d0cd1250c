"""The processing function of the TCFDL experiments: inference of a small multilayer perceptron
with numpy, on a model the project generates deterministically (no download).

The task's bytes are the input: read as uint8, scaled to [0, 1], zero-padded to whole rows of
`IN_DIM` features; each row goes through dense(IN_DIM -> HIDDEN) + ReLU -> dense(HIDDEN -> OUT);
the result is one byte per row, the predicted class (argmax). A 4 MB task is 16384 rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

IN_DIM = 256
HIDDEN = 64
OUT = 10
DEFAULT_SEED = 3

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Mlp:
    """Weights and biases of the two dense layers."""

    w1: F32
    b1: F32
    w2: F32
    b2: F32


@lru_cache(maxsize=4)
def model(seed: int = DEFAULT_SEED) -> Mlp:
    """The model of `seed` (same seed, same weights, on every host)."""
    rng = np.random.default_rng(seed)
    scale1, scale2 = np.float32(1 / np.sqrt(IN_DIM)), np.float32(1 / np.sqrt(HIDDEN))
    return Mlp(rng.standard_normal((IN_DIM, HIDDEN), dtype=np.float32) * scale1,
               rng.standard_normal(HIDDEN, dtype=np.float32) * np.float32(0.1),
               rng.standard_normal((HIDDEN, OUT), dtype=np.float32) * scale2,
               rng.standard_normal(OUT, dtype=np.float32) * np.float32(0.1))


def rows(data: bytes) -> F32:
    """The input matrix of a task (rows x IN_DIM, float32 in [0, 1])."""
    n = max(1, -(-len(data) // IN_DIM))
    x = np.zeros(n * IN_DIM, dtype=np.float32)
    x[:len(data)] = np.frombuffer(data, dtype=np.uint8)
    scaled: F32 = (x / np.float32(255.0)).reshape(n, IN_DIM)
    return scaled


def infer(data: bytes, seed: int = DEFAULT_SEED) -> bytes:
    """The predicted class of every row of the task, one byte each."""
    m = model(seed)
    hidden = np.maximum(rows(data) @ m.w1 + m.b1, np.float32(0))
    logits = hidden @ m.w2 + m.b2
    return bytes(np.argmax(logits, axis=1).astype(np.uint8).tobytes())


#: the case study's pipeline: the same model split into stages, one per instance
STAGES = 2


def stage(index: int, data: bytes, seed: int = DEFAULT_SEED) -> bytes:
    """Stage `index` (1-based, of `STAGES`) of the split model: stage 1 takes the task's bytes
    and returns the hidden activations (float32, little-endian, rows x HIDDEN); stage 2 takes
    those and returns the predicted classes, so stage 2 of stage 1 equals `infer`."""
    m = model(seed)
    if index == 1:
        hidden = np.maximum(rows(data) @ m.w1 + m.b1, np.float32(0))
        return bytes(hidden.astype("<f4").tobytes())
    if index == 2:
        if len(data) % (4 * HIDDEN):
            raise ValueError(f"stage 2 expects rows of {HIDDEN} float32, got {len(data)} bytes")
        hidden = np.frombuffer(data, dtype="<f4").reshape(-1, HIDDEN)
        return bytes(np.argmax(hidden @ m.w2 + m.b2, axis=1).astype(np.uint8).tobytes())
    raise ValueError(f"stage {index}: the model has stages 1..{STAGES}")
