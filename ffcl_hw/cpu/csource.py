"""Plain C from an integer model: the same inference as ``IntModel.run``, bit for bit.

:func:`generate_c` writes one self-contained C11 translation unit (``<stdint.h>`` only, no
libc calls, no floating point) that holds the model's weights as ``const`` arrays and a
function

.. code-block:: c

    int model_infer(const pixel_t x[MODEL_D], int64_t goodness[MODEL_L][MODEL_K],
                    int64_t scores[MODEL_K]);

that classifies one image: it fills the per-layer goodness and the per-label scores and
returns the label, exactly as ``IntModel.run`` (golden/intmodel.py) and the accelerator do.
The same source is compiled for the host (ffcl_hw.cpu.host) and for RV32IM
(ffcl_hw.cpu.rv32im); a harness ``#include``-s it.

The code is a reference people read, so it is specialised to the model in Python (one
block per layer, only the branches the configuration uses) and every loop carries a
comment naming its step of docs/integer-format.md. C types are chosen from the worst-case
widths that golden/intmodel.py derives (``acc_bits``, ``sq_bits``, ``score_bits``): a
32-bit accumulator where the bound allows it, 64 bits where it does not, so no
intermediate can overflow for any input in range.

It relies on two properties of GCC (and every mainstream C compiler) that the C standard
leaves to the implementation: ``>>`` of a negative signed integer is an arithmetic
(flooring) shift, and conversion of an in-range value between signed types is exact.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from golden.intformat import unsigned_bits
from golden.intmodel import IntModel

__all__ = ["CTypes", "c_types", "generate_c"]

# Numbers per line of a weight initialiser: keeps lines near 100 characters.
_PER_LINE = 16


class CTypes:
    """The C types of one model's quantities, chosen from its worst-case widths.

    Attributes
    ----------
    pixel, weight, state, acc, square, sq, term : str
        C type names for an input pixel, a W/U/V entry, a state / pre-activation /
        activation / bias, a MAC accumulator, the square of an activation, a sum of squares
        (the normaliser's input) and one label-scan term max(pre + U, 0)^2.
    """

    def __init__(self, model: IntModel):
        fmt = model.fmt
        amax, wmax = fmt.act_max, fmt.weight_max
        self.pixel = "uint8_t" if fmt.input_max <= 0xFF else "uint16_t"
        self.weight = "int8_t" if fmt.weight_bits <= 8 else "int16_t"
        self.state = "int16_t" if fmt.state_bits <= 16 else "int32_t"
        self.acc = "int32_t" if model.max_acc_bits() <= 32 else "int64_t"
        self.square = "uint32_t" if unsigned_bits(amax * amax) <= 32 else "uint64_t"
        self.sq = "uint32_t" if model.sq_bits() <= 32 else "uint64_t"
        self.term = "uint32_t" if unsigned_bits((amax + wmax) ** 2) <= 32 else "uint64_t"


def c_types(model: IntModel) -> CTypes:
    """The C types :func:`generate_c` uses for ``model``."""
    return CTypes(model)


def _array(name: str, ctype: str, values: np.ndarray, comment: str) -> str:
    """A ``static const`` C array (1-D or 2-D) with a comment line above it."""
    values = np.asarray(values, dtype=np.int64)
    dims = "".join(f"[{n}]" for n in values.shape)
    lines = [f"/* {comment} */", f"static const {ctype} {name}{dims} = {{"]

    def numbers(row: Iterable[int], indent: str) -> list[str]:
        row = [str(int(v)) for v in row]
        return [indent + ", ".join(row[i:i + _PER_LINE]) + ","
                for i in range(0, len(row), _PER_LINE)]

    if values.ndim == 1:
        lines += numbers(values, "    ")
    else:
        for row in values:
            if len(row) <= _PER_LINE:
                lines.append("    {" + numbers(row, "")[0][:-1] + "},")
            else:
                lines.append("    {")
                lines += numbers(row, "        ")
                lines.append("    },")
    lines.append("};")
    return "\n".join(lines)


def _header(model: IntModel, types: CTypes) -> str:
    config, fmt = model.config, model.fmt
    hidden = "x".join(str(n) for n in config.hidden)
    options = f"algo {config.algo.upper()}, D = {config.input_size}, K = {config.num_classes}, "
    options += f"hidden {hidden}"
    if config.algo == "ffcl":
        options += (f", T = {config.loops}, topology {config.topology}, "
                    f"feedback {config.feedback}, readout {config.readout}")
    if config.algo == "ffl":
        options += f", scoring {config.scoring}"
    formats = ", ".join(f"{k} {v}" for k, v in fmt.to_dict().items())
    scoring = ", ".join(str(i + 1) for i in config.scoring_layers())
    defines = [
        ("MODEL_D", config.input_size, "input pixels"),
        ("MODEL_K", config.num_classes, "labels"),
        ("MODEL_L", config.num_layers, "hidden layers"),
        ("MODEL_X", fmt.input_max, "pixel full scale: pixels are 0..X"),
        ("STATE_MIN", -(1 << (fmt.state_bits - 1)), "saturation range of s and pre"),
        ("STATE_MAX", fmt.act_max, ""),
        ("RSQRT_INDEX_BITS", fmt.rsqrt_index_bits, "k: address width of the rsqrt table"),
        ("RSQRT_FRAC_BITS", fmt.rsqrt_frac_bits, "Q: fractional bits of its entries"),
    ]
    defines += [(f"MODEL_N{i + 1}", n, f"width of layer {i + 1}")
                for i, n in enumerate(config.hidden)]
    lines = [
        "/*",
        " * Integer Forward-Forward inference, generated by ffcl_hw.cpu.csource from an",
        " * ffcl-hw integer model. Bit-exact with golden/intmodel.py IntModel.run; the rules",
        " * are docs/integer-format.md (section names are quoted in the comments below).",
        " *",
        f" * Model:   {options}",
        f" * Formats: {formats}",
        f" * Score:   goodness of layer(s) {scoring} summed; label = argmax, ties to the lowest.",
        " *",
        " * int model_infer(x, goodness, scores) classifies one image x[MODEL_D] (pixels",
        " * 0..MODEL_X), fills goodness[MODEL_L][MODEL_K] and scores[MODEL_K] and returns the",
        " * label. No libc, no floating point; >> of a negative number is assumed arithmetic",
        " * (GCC's documented behaviour).",
        " */",
        "#include <stdint.h>",
        "",
    ]
    lines += [f"#define {name} ({value})" + (f"  /* {why} */" if why else "")
              for name, value, why in defines]
    lines += [
        "",
        "/* C types from the worst-case widths of golden/intmodel.py (section \"Widths\"):",
        f" * max_acc_bits = {model.max_acc_bits()}, sq_bits = {model.sq_bits()}, "
        f"score_bits = {model.score_bits()}. */",
        f"typedef {types.pixel} pixel_t;    /* input pixel, 0..X */",
        f"typedef {types.weight} weight_t;    /* W, U, V entries, -wmax..wmax */",
        f"typedef {types.state} state_t;    /* s, pre, b and a = max(s, 0) */",
        f"typedef {types.acc} acc_t;      /* MAC accumulator of any product */",
        f"typedef {types.square} square_t;   /* a^2 of one activation */",
        f"typedef {types.sq} sq_t;       /* sum of squares, the normaliser's input */",
        f"typedef {types.term} term_t;     /* one label-scan term max(pre + U, 0)^2 */",
        "",
    ]
    return "\n".join(lines)


_PRIMITIVES = r"""
/* ---- Primitives ("Primitives", golden/intformat.py) ------------------------------- */

/* round_shift(v, n) = (v + 2^(n-1)) >> n, v unchanged for n = 0: round half up. Shifts
 * of 63 or more are clamped to 63, as the reference does; they give 0 for |v| < 2^62. */
static int64_t round_shift(int64_t v, int n)
{
    if (n > 63)
        n = 63;
    const int64_t half = n > 0 ? (int64_t)1 << (n - 1) : 0;
    return (v + half) >> n;
}

/* saturate(v, B_s): clamp to the state range. */
static state_t saturate(int64_t v)
{
    if (v < STATE_MIN)
        return (state_t)STATE_MIN;
    if (v > STATE_MAX)
        return (state_t)STATE_MAX;
    return (state_t)v;
}

/* bits(v): the bit length of v, bits(0) = 0 (binary search: no builtin, no libgcc). */
static int bit_length(uint64_t v)
{
    int n = 0;
    for (int step = 32; step > 0; step >>= 1) {
        if (v >> step) {
            n += step;
            v >>= step;
        }
    }
    return n + (int)v;
}

/* rsqrt(sq): sh = max(bits(sq) - k, 0) rounded up to even, r = T[sq >> sh], so that
 * 1/sqrt(sq) ~ r 2^-(Q + sh/2). sq = 0 gives r = 0: a zero vector normalises to zero. */
static uint32_t rsqrt(uint64_t sq, int *sh)
{
    int shift = bit_length(sq) - RSQRT_INDEX_BITS;
    if (shift < 0)
        shift = 0;
    shift += shift & 1;
    *sh = shift;
    return RSQRT_TABLE[sq >> shift];
}

/* ---- Products ("One product") -------------------------------------------------------- */

/* Layer 1's feature product on the pixels, which are not normalised (r = 2^Q, sh = 0):
 * P_i = round_shift(acc_i 2^Q, Q + e - S), acc_i = sum_j W[i, j] u_j. */
static void product_pixels(const weight_t *W, int rows, int cols, const pixel_t *u,
                           int shift, int64_t *P)
{
    for (int i = 0; i < rows; i++) {
        const weight_t *w = W + (long)i * cols;
        acc_t acc = 0;
        /* MACs: acc_i = sum_j W[i, j] u_j (exact in acc_t by max_acc_bits) */
        for (int j = 0; j < cols; j++)
            acc += (acc_t)w[j] * u[j];
        P[i] = round_shift((int64_t)acc * ((int64_t)1 << RSQRT_FRAC_BITS), shift);
    }
}

/* A normalised product W n(u) = (W u) / ||u||, on activations: (r, sh) = rsqrt(sum u^2)
 * once per input vector, then P_i = round_shift(acc_i r, sh/2 + Q + e - S). */
static void product_normalised(const weight_t *W, int rows, int cols, const state_t *u,
                               int shift, int64_t *P)
{
    /* Sum of squares of the input vector, the normaliser's input */
    sq_t sq = 0;
    for (int j = 0; j < cols; j++)
        sq += (square_t)u[j] * (square_t)u[j];
    int sh;
    const uint32_t r = rsqrt(sq, &sh);
    for (int i = 0; i < rows; i++) {
        const weight_t *w = W + (long)i * cols;
        acc_t acc = 0;
        /* MACs: acc_i = sum_j W[i, j] u_j on the raw activations */
        for (int j = 0; j < cols; j++)
            acc += (acc_t)w[j] * u[j];
        P[i] = round_shift((int64_t)acc * r, sh / 2 + shift);
    }
}
"""

_SCAN = r"""
/* ---- Label scan ("Data flow per variant", FFDL and FFCL) ---------------------------- */

/* G(k) += sum_i max(pre_i + U[i, k], 0)^2 for every label k. U is stored transposed (one
 * row per label) so that the inner loop reads it in order; pre + U is formed at B_s + 1
 * bits and not saturated. */
static void label_scan(const state_t *pre, const weight_t *UT, int n, int64_t *G)
{
    for (int k = 0; k < MODEL_K; k++) {
        const weight_t *u = UT + (long)k * n;
        int64_t g = 0;
        for (int i = 0; i < n; i++) {
            int32_t h = (int32_t)pre[i] + u[i];
            if (h < 0)
                h = 0;
            g += (term_t)h * (term_t)h;
        }
        G[k] += g;
    }
}
"""

_READOUT = r"""
    /* ---- Readout: score(k) = goodness summed over the scoring layers; argmax, ties to
     * the lowest label ---- */
    int label = 0;
    for (int k = 0; k < MODEL_K; k++) {
        scores[k] = {score_sum};
        if (scores[k] > scores[label])
            label = k;
    }
    return label;
}
"""


def _arrays(model: IntModel, types: CTypes) -> str:
    config, fmt = model.config, model.fmt
    parts = [_array("RSQRT_TABLE", "uint32_t", fmt.table,
                    f"rsqrt table T[m] = floor(2^Q / sqrt(m) + 1/2), T[0] = 0 "
                    f"(k = {fmt.rsqrt_index_bits}, Q = {fmt.rsqrt_frac_bits})")]
    for i, layer in enumerate(model.layers):
        n = i + 1
        if i == 0 and config.algo == "ffl":
            what = (f"W_1 (e_1 = {layer.w_exp}): columns 0..D-1 the pixels, D..D+K-1 the "
                    "label block")
        elif i == 0:
            what = f"W_1 (e_1 = {layer.w_exp}), on the pixels"
        else:
            what = f"W_{n} (e_{n} = {layer.w_exp}), on a_{n - 1}"
        parts.append(_array(f"W{n}", "weight_t", layer.W, what))
        parts.append(_array(f"B{n}", "state_t", layer.b, f"b_{n}, S fractional bits"))
        if layer.U is not None:
            parts.append(_array(f"U{n}T", "weight_t", layer.U.T,
                                f"U_{n} transposed: one row of N_{n} entries per label"))
        if layer.V is not None:
            src = config.feedback_source(i) + 1
            parts.append(_array(f"V{n}", "weight_t", layer.V,
                                f"V_{n} (v_{n} = {layer.v_exp}), feedback from a_{src}"))
    shifts = ["/* Constant part of each scaler shift, Q + e - S (IntModel.shift). */"]
    for i, layer in enumerate(model.layers):
        n = i + 1
        shifts.append(f"#define SHIFT_W{n} ({model.shift(layer.w_exp)})")
        if layer.V is not None:
            shifts.append(f"#define SHIFT_V{n} ({model.shift(layer.v_exp)})")
    return "\n\n".join(parts) + "\n\n" + "\n".join(shifts) + "\n"


def _score_sum(model: IntModel) -> str:
    return " + ".join(f"goodness[{i}][k]" for i in model.config.scoring_layers())


def _ffl_body(model: IntModel) -> str:
    config = model.config
    nmax = max(config.hidden)
    out = [
        "int model_infer(const pixel_t x[MODEL_D], int64_t goodness[MODEL_L][MODEL_K],",
        "                int64_t scores[MODEL_K])",
        "{",
        "    /* FFL: K full passes, the label as layer 1's extra input block. */",
        "    pixel_t u[MODEL_D + MODEL_K];",
        f"    int64_t P[{nmax}], g;",
    ]
    out += [f"    state_t a{i + 1}[MODEL_N{i + 1}];" for i in range(config.num_layers)]
    out += [
        "    for (int j = 0; j < MODEL_D; j++)",
        "        u[j] = x[j];",
        "    for (int k = 0; k < MODEL_K; k++) {",
        "        /* u = [x_1..x_D, X [k = 0], .., X [k = K-1]]: X for the candidate label */",
        "        for (int j = 0; j < MODEL_K; j++)",
        "            u[MODEL_D + j] = (pixel_t)(j == k ? MODEL_X : 0);",
    ]
    for i in range(config.num_layers):
        n = i + 1
        out.append(f"        /* -- Layer {n} -- */")
        if i == 0:
            out.append("        product_pixels(&W1[0][0], MODEL_N1, MODEL_D + MODEL_K, u, "
                       "SHIFT_W1, P);")
        else:
            out.append(f"        product_normalised(&W{n}[0][0], MODEL_N{n}, MODEL_N{n - 1}, "
                       f"a{n - 1}, SHIFT_W{n}, P);")
        out += [
            f"        /* s = saturate(P + b), a = max(s, 0), g_{n}(k) = sum_i a_i^2 */",
            "        g = 0;",
            f"        for (int i = 0; i < MODEL_N{n}; i++) {{",
            f"            const state_t s = saturate(P[i] + B{n}[i]);",
            f"            a{n}[i] = s > 0 ? s : 0;",
            f"            g += (square_t)a{n}[i] * (square_t)a{n}[i];",
            "        }",
            f"        goodness[{i}][k] = g;",
        ]
    out.append("    }")
    return "\n".join(out)


def _loop_body(model: IntModel) -> str:
    """FFDL (one pass) and FFCL with state feedback (T iterations)."""
    config = model.config
    L, T = config.num_layers, config.loops
    ffcl = config.algo == "ffcl"
    sources = sorted({config.feedback_source(i) for i in range(L)} - {None})
    nmax = max(config.hidden)
    out = [
        "int model_infer(const pixel_t x[MODEL_D], int64_t goodness[MODEL_L][MODEL_K],",
        "                int64_t scores[MODEL_K])",
        "{",
    ]
    if ffcl:
        out.append(f"    /* FFCL: T = {T} iterations; a_l^(0) = 0 for every layer. */")
    else:
        out.append("    /* FFDL: one label-free pass, then the label scan of every layer. */")
    # a_l is kept where it is read: the next layer's input or a feedback source.
    kept = [i for i in range(L) if i + 1 < L or i in sources]
    out += [f"    state_t a{i + 1}[MODEL_N{i + 1}];" for i in kept]
    out += [f"    state_t prev{s + 1}[MODEL_N{s + 1}];  /* a_{s + 1} of the previous iteration */"
            for s in sources]
    out += [
        "    int64_t first[MODEL_N1];  /* P(W_1, e_1, x): the image is the same every "
        "iteration */",
        f"    int64_t P[{nmax}]" + (f", F[{nmax}];" if sources else ";"),
        f"    state_t pre[{nmax}];",
        "    for (int l = 0; l < MODEL_L; l++)",
        "        for (int k = 0; k < MODEL_K; k++)",
        "            goodness[l][k] = 0;",
        "",
        "    /* Layer 1's feature product, computed once */",
        "    product_pixels(&W1[0][0], MODEL_N1, MODEL_D, x, SHIFT_W1, first);",
    ]
    indent = "    "
    if ffcl:
        read = "1" if config.readout == "sum" else f"t == {T - 1}"
        why = ("every iteration is read (readout sum)" if config.readout == "sum"
               else "only the last iteration is read (readout last)")
        out += [
            f"    for (int t = 0; t < {T}; t++) {{",
            f"        const int read = {read};  /* {why} */",
        ]
        indent = "        "
    for i in range(L):
        n = i + 1
        src = config.feedback_source(i)
        out.append(f"{indent}/* -- Layer {n} -- */")
        if i == 0:
            ff = "first"
        else:
            ff = "P"
            out.append(f"{indent}product_normalised(&W{n}[0][0], MODEL_N{n}, MODEL_N{n - 1}, "
                       f"a{n - 1}, SHIFT_W{n}, P);")
        if src is not None:
            s = src + 1
            out += [
                f"{indent}/* Feedback F = P(V_{n}, v_{n}, a_{s} of the previous iteration). "
                "In the first",
                f"{indent} * (t == 0), a^(0) = 0 normalises to zero: F = 0, and the product "
                "is skipped",
                f"{indent} * (as the accelerator does). */",
                f"{indent}if (t > 0)",
                f"{indent}    product_normalised(&V{n}[0][0], MODEL_N{n}, MODEL_N{s}, prev{s}, "
                f"SHIFT_V{n}, F);",
            ]
        f = "(t > 0 ? F[i] : 0)" if src is not None else None
        out.append(f"{indent}for (int i = 0; i < MODEL_N{n}; i++) {{")
        if f is not None:
            out += [
                f"{indent}    /* feedback state: s = pre = saturate(P + F + b) */",
                f"{indent}    const state_t s = saturate({ff}[i] + {f} + B{n}[i]);",
                f"{indent}    pre[i] = s;",
            ]
        else:
            out += [
                f"{indent}    /* s = pre = saturate(P + b) */",
                f"{indent}    const state_t s = saturate({ff}[i] + B{n}[i]);",
                f"{indent}    pre[i] = s;",
            ]
        if i in kept:
            out.append(f"{indent}    a{n}[i] = s > 0 ? s : 0;  /* a = max(s, 0) */")
        out.append(f"{indent}}}")
        if ffcl:
            out += [f"{indent}if (read)",
                    f"{indent}    label_scan(pre, &U{n}T[0][0], MODEL_N{n}, goodness[{i}]);"]
        else:
            out.append(f"{indent}label_scan(pre, &U{n}T[0][0], MODEL_N{n}, goodness[{i}]);")
    if ffcl:
        if sources:
            out.append(f"{indent}/* The feedback sources' outputs, heard in the next "
                       "iteration */")
        for s in sources:
            out += [f"{indent}for (int i = 0; i < MODEL_N{s + 1}; i++)",
                    f"{indent}    prev{s + 1}[i] = a{s + 1}[i];"]
        out.append("    }")
    return "\n".join(out)


def _goodness_body(model: IntModel) -> str:
    """FFCL with feedback "goodness" (T = 2), doing the accelerator's work only.

    The forwarded states never hear feedback, so iteration 2 forwards exactly iteration 1's
    states; it differs only in the goodness of the layers that receive feedback. One forward
    pass, the feedback products once, and a rescan of the receiving layers give the same
    goodness as two full iterations (golden/costs.py counts the same work).
    """
    config = model.config
    L = config.num_layers
    total = config.readout == "sum"
    receivers = [i for i in range(L) if config.feedback_source(i) is not None]
    sources = sorted({config.feedback_source(i) for i in receivers})
    kept = [i for i in range(L) if i + 1 < L or i in sources]
    nmax = max(config.hidden)
    out = [
        "int model_infer(const pixel_t x[MODEL_D], int64_t goodness[MODEL_L][MODEL_K],",
        "                int64_t scores[MODEL_K])",
        "{",
        "    /* FFCL, feedback goodness, T = 2. The forwarded states s_l never hear feedback,",
        "     * so iteration 2 forwards exactly iteration 1's states (FFDL's) and differs only",
        "     * in pre = saturate(s + F) of the layers that hear feedback: one forward pass,",
        "     * the feedback products once, and a rescan of those layers. */",
    ]
    out += [f"    state_t a{i + 1}[MODEL_N{i + 1}];" for i in kept]
    out += [f"    state_t s{i + 1}[MODEL_N{i + 1}];  /* s_{i + 1}, for its iteration-2 pre */"
            for i in receivers]
    out += [
        f"    int64_t P[{nmax}];",
        f"    state_t pre[{nmax}];",
        "    for (int l = 0; l < MODEL_L; l++)",
        "        for (int k = 0; k < MODEL_K; k++)",
        "            goodness[l][k] = 0;",
        "",
        "    /* ---- Iteration 1: the forward pass; pre = s (a^(0) = 0 gives F = 0) ---- */",
    ]
    for i in range(L):
        n = i + 1
        out.append(f"    /* -- Layer {n} -- */")
        if i == 0:
            out.append("    product_pixels(&W1[0][0], MODEL_N1, MODEL_D, x, SHIFT_W1, P);")
        else:
            out.append(f"    product_normalised(&W{n}[0][0], MODEL_N{n}, MODEL_N{n - 1}, "
                       f"a{n - 1}, SHIFT_W{n}, P);")
        out += [
            f"    for (int i = 0; i < MODEL_N{n}; i++) {{",
            "        /* s = saturate(P + b), a = max(s, 0) */",
            f"        const state_t s = saturate(P[i] + B{n}[i]);",
            "        pre[i] = s;",
        ]
        if i in receivers:
            out.append(f"        s{n}[i] = s;")
        if i in kept:
            out.append(f"        a{n}[i] = s > 0 ? s : 0;")
        out.append("    }")
        if i not in receivers:
            why = ("read twice (readout sum): iteration 2's goodness of this layer is "
                   "iteration 1's" if total else "iteration 2's goodness of this layer is "
                   "iteration 1's (readout last)")
            out.append(f"    /* Scan, {why} */")
            out.append(f"    label_scan(pre, &U{n}T[0][0], MODEL_N{n}, goodness[{i}]);")
            if total:
                out += ["    for (int k = 0; k < MODEL_K; k++)",
                        f"        goodness[{i}][k] *= 2;"]
        elif total:
            out += ["    /* Scan of iteration 1 (readout sum) */",
                    f"    label_scan(pre, &U{n}T[0][0], MODEL_N{n}, goodness[{i}]);"]
    out.append("")
    out.append("    /* ---- Iteration 2: the layers that hear feedback ---- */")
    for i in receivers:
        n, src = i + 1, config.feedback_source(i) + 1
        out += [
            f"    /* -- Layer {n}: F = P(V_{n}, v_{n}, a_{src}^(1)), pre = saturate(s + F) -- */",
            f"    product_normalised(&V{n}[0][0], MODEL_N{n}, MODEL_N{src}, a{src}, "
            f"SHIFT_V{n}, P);",
            f"    for (int i = 0; i < MODEL_N{n}; i++)",
            f"        pre[i] = saturate((int64_t)s{n}[i] + P[i]);",
            f"    label_scan(pre, &U{n}T[0][0], MODEL_N{n}, goodness[{i}]);",
        ]
    return "\n".join(out)


def generate_c(model: IntModel) -> str:
    """C source of ``model``'s inference, bit-exact with :meth:`IntModel.run`.

    Parameters
    ----------
    model : IntModel
        Any integer model :meth:`IntModel.check` accepts: FFL, FFDL or FFCL with every
        option (scoring, topology, feedback, readout) and any formats in range.

    Returns
    -------
    str
        One C11 translation unit defining ``model_infer`` (see the module docstring) and
        the macros ``MODEL_D``, ``MODEL_K``, ``MODEL_L`` and the type ``pixel_t`` that a
        harness needs.

    Raises
    ------
    TypeError
        If ``model`` is not an :class:`IntModel`.
    ValueError
        If :meth:`IntModel.check` refuses the model.
    """
    if not isinstance(model, IntModel):
        raise TypeError(f"model must be an IntModel, not {type(model).__name__}")
    model.check()
    types = c_types(model)
    config = model.config
    if config.algo == "ffl":
        body = _ffl_body(model)
    elif config.algo == "ffcl" and config.feedback == "goodness":
        body = _goodness_body(model)
    else:
        body = _loop_body(model)
    parts = [
        _header(model, types),
        "/* ---- Weights (\"Number formats\") ------------------------------------------- */",
        "",
        _arrays(model, types),
        _PRIMITIVES,
    ]
    if model.config.algo != "ffl":
        parts.append(_SCAN)
    parts += [
        "/* ---- Inference (\"Data flow per variant\") ------------------------------------ */",
        "",
        body,
        _READOUT.replace("{score_sum}", _score_sum(model)),
    ]
    return "\n".join(parts)
