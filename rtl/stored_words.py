"""The stored words of a training core: the integer trainer's arrays packed as its
memories hold them, and back.

A :class:`rtl.training_core.TrainingCore` keeps every weight with the rule's fine bits
(``store_bits`` wide, biases ``state_bits + f``): its weight memory holds W tile-major,
P fields a word (:func:`rtl.program.pack_rows`), then for an FFCL layer that hears the
loop its V the same way, its bias memory one bias a word and its label memory a row of
U in ceil(K / G) words of G fields (label lanes G, K by default: one word a row; fields
past K are 0), layer after layer from address 0. The host
reads them back over the link (READ, docs/host-link.md) and reassembles the trainer's
arrays with :func:`unpack_stored`; :func:`forward_model` is the model they stand for
(the top bits, ``stored >> f``).
"""

from __future__ import annotations

import numpy as np

from golden.intmodel import IntLayer, IntModel
from rtl.label_groups import LabelGroups
from rtl.program import pack_rows

__all__ = ["STORED_MEMORIES", "forward_model", "stored_words", "unpack_stored"]

#: The stored memories by the name of their words (the weight memory's "W" words hold
#: FFCL's V too) and the load target name of each.
STORED_MEMORIES = {"W": "weights", "b": "bias", "U": "labels"}


def _pack(values, bits: int) -> int:
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & ((1 << bits) - 1)) << (i * bits)
    return word


def _field(word: int, index: int, bits: int) -> int:
    value = (word >> (index * bits)) & ((1 << bits) - 1)
    return value - (1 << bits) if value >> (bits - 1) else value


def stored_words(stored: list[dict], *, lanes: int, store_bits: int, bias_bits: int,
                 label_lanes: int | None = None) -> dict[str, list[int]]:
    """The words of the W (each layer's W, then its V), b and U memories for
    IntTrainer-style ``stored`` arrays (``label_lanes`` G label weights a U word; default
    a whole row)."""
    words: dict[str, list[int]] = {"W": [], "b": [], "U": []}
    for layer in stored:
        for name in ("W", "V"):
            if name in layer:
                words["W"] += [_pack(row, store_bits) for row in pack_rows(layer[name], lanes)]
        words["b"] += [int(v) & ((1 << bias_bits) - 1) for v in layer["b"]]
        G = LabelGroups(np.shape(layer["U"])[1], label_lanes).lanes
        words["U"] += [_pack(row[g:g + G], store_bits) for row in layer["U"]
                       for g in range(0, len(row), G)]
    return words


def unpack_stored(words: dict[str, list[int]], model: IntModel, *, lanes: int,
                  store_bits: int, bias_bits: int,
                  label_lanes: int | None = None) -> list[dict]:
    """IntTrainer-style stored arrays from the memories' ``words`` (:func:`stored_words`'s
    inverse) for ``model``'s configuration.

    Raises
    ------
    ValueError
        If a memory has another number of words than the configuration needs.
    """
    config = model.config
    K = config.num_classes
    label_groups = LabelGroups(K, label_lanes)
    G, groups = label_groups.lanes, label_groups.count
    n_ins = [config.input_size, *config.hidden[:-1]]
    n_srcs = [0 if (source := config.feedback_source(i)) is None else config.hidden[source]
              for i in range(config.num_layers)]
    tiles = [-(-n // lanes) for n in config.hidden]
    need = {"W": sum(t * (n_in + n_src)
                     for t, n_in, n_src in zip(tiles, n_ins, n_srcs, strict=True)),
            "b": sum(config.hidden), "U": groups * sum(config.hidden)}
    for name, count in need.items():
        if len(words[name]) != count:
            raise ValueError(f"the {STORED_MEMORIES[name]} memory of this configuration has "
                             f"{count} words, not {len(words[name])}")

    def rows(at: int, n: int, columns: int) -> np.ndarray:
        # The tile-major words of an n x columns array from address ``at`` on.
        matrix = np.zeros((n, columns), dtype=np.int64)
        for tile in range(-(-n // lanes)):
            for c in range(columns):
                word = words["W"][at + tile * columns + c]
                for p in range(min(lanes, n - tile * lanes)):
                    matrix[tile * lanes + p, c] = _field(word, p, store_bits)
        return matrix

    stored, w_at, n_at = [], 0, 0
    for n, n_in, n_src, t in zip(config.hidden, n_ins, n_srcs, tiles, strict=True):
        layer = {"W": rows(w_at, n, n_in)}
        if n_src:
            # The layer's V words follow its W words.
            layer["V"] = rows(w_at + t * n_in, n, n_src)
        layer["b"] = np.array([_field(v, 0, bias_bits) for v in words["b"][n_at:n_at + n]],
                              np.int64)
        # A neuron's row: its ``groups`` words of G fields, the fields past K dropped.
        label = words["U"][groups * n_at:groups * (n_at + n)]
        layer["U"] = np.array([[_field(label[groups * i + k // G], k % G, store_bits)
                                for k in range(K)] for i in range(n)],
                              np.int64).reshape(n, K)
        stored.append(layer)
        w_at += t * (n_in + n_src)
        n_at += n
    return stored


def forward_model(model: IntModel, stored: list[dict], *, store_bits: int) -> IntModel:
    """The forward model ``stored`` stands for: ``model``'s configuration, formats and
    exponents with every array the top bits of its stored one (``stored >> f``)."""
    f = store_bits - model.fmt.weight_bits
    layers = [IntLayer(W=st["W"] >> f, w_exp=lay.w_exp, b=st["b"] >> f, U=st["U"] >> f,
                       V=None if "V" not in st else st["V"] >> f, v_exp=lay.v_exp)
              for lay, st in zip(model.layers, stored, strict=True)]
    return IntModel(config=model.config, fmt=model.fmt, layers=layers)
