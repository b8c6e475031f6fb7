"""Where a neuron's label weights live: G of them to a label word, ceil(K / G) words.

The inference core's label memory (:func:`rtl.program.build_program`, ``label_lanes``
G) keeps neuron i's K label weights in words i ceil(K / G) + g, word g holding labels
g G .. g G + G - 1 (zeros past K). The training engine reads and writes U[i, y] and
U[i, y'] there: one word when G = K, else the word of each label.
"""

from __future__ import annotations

from amaranth import Array, Value

from rtl.params import check_positive_int

__all__ = ["LabelGroups", "stored_field"]


def stored_field(word: Value, index: int, stored_bits: int) -> Value:
    """Field ``index`` of a memory word of ``stored_bits``-bit stored fields, signed."""
    return word[index * stored_bits:(index + 1) * stored_bits].as_signed()


class LabelGroups:
    """The label words of a neuron, for K labels G to a word.

    Parameters
    ----------
    labels : int
        K.
    lanes : int or None
        G, at most K (None: K, one word a neuron).

    Attributes
    ----------
    lanes : int
        G.
    count : int
        ceil(K / G), words a neuron.
    reads : int
        Label words the engine reads for U[i, y] and U[i, y']: 1 when one word holds
        every label, else 2 (one each, the same word read twice when both labels share
        it, so the cycles do not depend on the labels).
    """

    def __init__(self, labels: int, lanes: int | None = None) -> None:
        labels = check_positive_int("Label count", labels)
        lanes = labels if lanes is None else check_positive_int("Label lane count", lanes)
        if lanes > labels:
            raise ValueError(f"Label lane count must be at most the label count {labels}, "
                             f"not {lanes}")
        self.labels, self.lanes = labels, lanes
        self.count = -(-labels // lanes)
        self.reads = 1 if self.count == 1 else 2

    def group(self, label: Value) -> Value:
        """The word of a neuron's ``label`` among its words: label // G."""
        return Array(q // self.lanes for q in range(self.labels))[label]

    def place(self, label: Value) -> Value:
        """``label``'s field in its word: label mod G."""
        return Array(q % self.lanes for q in range(self.labels))[label]

    def word(self, neuron: Value, label: Value) -> Value:
        """The address of ``label``'s word of ``neuron`` (its place among all neurons):
        neuron x ceil(K / G) as shifts and adds (a product would take a DSP), plus the
        label's group."""
        if self.count == 1:
            return neuron
        base = sum(neuron << bit for bit in range(self.count.bit_length())
                   if self.count >> bit & 1)
        return base + self.group(label)

    def field(self, word: Value, label: Value, bits: int) -> Value:
        """``label``'s signed ``bits``-bit field of its word ``word``."""
        fields = Array(stored_field(word, j, bits) for j in range(self.lanes))
        return fields[label if self.count == 1 else self.place(label)]
