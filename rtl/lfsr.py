"""The training rule's word generator in hardware: one 32-bit LFSR word per cycle.

The rule (docs/integer-training.md, "The generators") draws its random bits only as words:
a word is the state of the 32-bit Galois register of :mod:`golden.lfsr` after 32 single
steps. A word is a linear function of the previous one over GF(2), so the 32 steps
collapse into one XOR network (leap-ahead): output bit i is the XOR of the state bits b
whose column ``A e_b`` has bit i set, with A = (one step)^32. :func:`word_columns`
derives A's columns by running the golden generator itself from each unit state, so the
network cannot drift from the reference.
"""

from __future__ import annotations

from functools import reduce

from amaranth import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.lfsr import LFSR_WIDTH, Lfsr
from rtl.params import check_positive_int

__all__ = ["WordGenerator", "next_word", "seed_state", "word_columns"]

#: The state space's size: a state is 1 + a residue modulo 2^32 - 1 (never 0).
_PERIOD = (1 << LFSR_WIDTH) - 1


def word_columns() -> tuple[int, ...]:
    """The columns of the word matrix A: ``A e_b`` for b = 0..31.

    Column b is the word the golden generator gives from the state with only bit b set
    (:meth:`golden.lfsr.Lfsr.word`, 32 single steps).
    """
    columns = []
    for b in range(LFSR_WIDTH):
        lfsr = Lfsr(0)
        lfsr.state = 1 << b
        columns.append(lfsr.word())
    return tuple(columns)


def next_word(state: Value) -> Value:
    """The word after ``state`` (32 bits): bit i of A s, the XOR of the state bits whose
    column of A has bit i (:func:`word_columns`)."""
    columns = word_columns()
    return Cat(*(reduce(lambda a, b: a ^ b,
                        [state[b] for b in range(LFSR_WIDTH) if columns[b] >> i & 1],
                        Const(0, 1))
                 for i in range(LFSR_WIDTH)))


def seed_state(seed: int, offset: int) -> int:
    """The documented seeding: 1 + ((seed + offset) mod (2^32 - 1))."""
    return 1 + (seed + offset) % _PERIOD


class WordGenerator(wiring.Component):
    """A stream of the rule's 32-bit words, one per cycle, from the register's state.

    ``words.payload`` is a register holding the next word; a transfer (``valid`` and
    ``ready``) replaces it by the word after it, through the leap-ahead network. Without
    ``ready`` the word is held: no word is skipped or repeated whatever the consumer's
    pattern. The words equal :meth:`golden.lfsr.Lfsr.word` of a generator seeded as the
    component is (after reset with ``reset_seed``, after ``load`` with ``seed``).

    Loading takes :attr:`LOAD_LATENCY` cycles, ``valid`` low meanwhile: the residue of
    ``seed + offset`` modulo 2^32 - 1 (32-bit chunks added, since 2^32 = 1 modulo
    2^32 - 1; then one end-around fold and a final subtraction), then the first word.
    Each step has its own register, so no chain of carries sits in one cycle.

    Parameters
    ----------
    offset : int
        Added to the seed: 0 for the rounding generator,
        :data:`golden.inttrain.LABEL_SEED_OFFSET` for the label generator.
    seed_bits : int, optional
        Width of the ``seed`` input (default 64, the rule's seeds go up to 2^63); 0 for a
        generator without ``load`` and ``seed`` (the replay generator, which is only
        restored, and the training core's two, which keep their ``reset_seed``: the
        seeding's adders are a quarter of the generator's logic).
    reset_seed : int, optional
        The seed (0..2^64 - 1) the generator holds after reset (default 0).
    network : bool, optional
        Whether it has its own leap-ahead network (default True). Without it (and
        without seeding), the word after ``words.payload`` comes in on ``following``:
        generators that never step in the same cycle can share one network (the
        training core's three, for a part as small as the UP5K).

    Members
    -------
    words : Out(stream.Signature(unsigned(32)))
        The words, in the order the generator produces them.
    load : In(1)
        Only with ``seed_bits``: seed the generator with ``seed`` (takes precedence over
        a transfer in the same cycle; the word offered in that cycle is discarded).
    seed : In(unsigned(seed_bits))
        Only with ``seed_bits``.
    restore : In(1)
        Offer ``restore_word`` as the next word from the next cycle on, and continue the
        sequence from it (a word is the whole state, so an earlier ``payload`` captured by
        the consumer rewinds the generator: the update replays the column words kappa for
        every tile). ``load`` takes precedence.
    restore_word : In(unsigned(32))
    following : In(unsigned(32))
        Only without ``network``: :func:`next_word` of ``words.payload``, taken with a
        transfer.
    """

    #: Cycles from ``load`` to the first word's ``valid``: the chunk sum, the fold, the
    #: first word.
    LOAD_LATENCY = 3

    def __init__(self, *, offset: int, seed_bits: int = 64, reset_seed: int = 0,
                 network: bool = True) -> None:
        self.seed_bits = check_positive_int("Seed width", seed_bits, minimum=0)
        if not isinstance(network, bool):
            raise TypeError(f"Network must be a bool, not {network!r}")
        if not network and seed_bits:
            raise ValueError("A generator without its own network cannot be seeded "
                             "(seed_bits=0): the seed's first word needs the network")
        self.network = network
        if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset < 1 << 32:
            raise TypeError(f"Seed offset must be an integer in 0..{(1 << 32) - 1}, "
                            f"not {offset!r}")
        if (not isinstance(reset_seed, int) or isinstance(reset_seed, bool)
                or not 0 <= reset_seed < 1 << 64):
            raise TypeError(f"Reset seed must be an integer in 0..{(1 << 64) - 1}, "
                            f"not {reset_seed!r}")
        self.offset = offset
        self.reset_seed = reset_seed
        members = {"words": Out(stream.Signature(unsigned(LFSR_WIDTH)))}
        if seed_bits:
            members.update({"load": In(1), "seed": In(unsigned(seed_bits))})
        members.update({"restore": In(1), "restore_word": In(unsigned(LFSR_WIDTH))})
        if not network:
            members["following"] = In(unsigned(LFSR_WIDTH))
        super().__init__(members)

    @property
    def reset_word(self) -> int:
        """The first word after reset (of ``reset_seed``): a ``restore`` of it puts the
        generator back where reset leaves it."""
        first = Lfsr(0)
        first.state = seed_state(self.reset_seed, self.offset)
        return first.word()

    @property
    def load_latency(self) -> int:
        """Cycles from ``load`` to the first word being offered (:attr:`LOAD_LATENCY`)."""
        return self.LOAD_LATENCY

    def elaborate(self, platform) -> Module:
        m = Module()
        word = Signal(unsigned(LFSR_WIDTH), init=self.reset_word)
        valid = Signal(init=1)
        m.d.comb += [self.words.payload.eq(word), self.words.valid.eq(valid)]
        take = self.words.valid & self.words.ready
        if not self.seed_bits:
            with m.If(self.restore):
                m.d.sync += [word.eq(self.restore_word), valid.eq(1)]
            with m.Elif(take):
                m.d.sync += word.eq(next_word(word) if self.network else self.following)
            return m

        # The seeding, one register per step. (seed + offset) mod M as the sum of the
        # 32-bit chunks of seed and offset, which is below (chunks + 1) 2^32.
        chunks = [self.seed[i:i + LFSR_WIDTH] for i in range(0, self.seed_bits, LFSR_WIDTH)]
        chunk_sum = Signal(range((len(chunks) + 1) << LFSR_WIDTH))
        folded = Signal(range(_PERIOD + len(chunks) + 1))
        state = Signal(unsigned(LFSR_WIDTH))
        loading = Signal(range(self.LOAD_LATENCY + 1))
        m.d.comb += folded.eq(chunk_sum[:LFSR_WIDTH] + chunk_sum[LFSR_WIDTH:])
        m.d.sync += chunk_sum.eq(sum(chunks, self.offset))
        # folded < M + chunks + 1 is one subtraction of M from its residue.
        m.d.sync += state.eq(1 + (folded - (folded >= _PERIOD) * _PERIOD)[:LFSR_WIDTH])
        # One network for both uses: the first word of a seed, the word after a word.
        following = Signal(unsigned(LFSR_WIDTH))
        m.d.comb += following.eq(next_word(Mux(loading == 1, state, word)))

        with m.If(self.load):
            m.d.sync += [valid.eq(0), loading.eq(self.LOAD_LATENCY - 1)]
        with m.Elif(self.restore):
            m.d.sync += [word.eq(self.restore_word), valid.eq(1), loading.eq(0)]
        with m.Elif(loading != 0):
            m.d.sync += loading.eq(loading - 1)
            with m.If(loading == 1):
                m.d.sync += [word.eq(following), valid.eq(1)]
        with m.Elif(take):
            m.d.sync += word.eq(following)
        return m
