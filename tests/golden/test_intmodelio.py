"""Integer model files: complete round trips and clear refusals of malformed files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from golden.intmodel import IntModel
from golden.intmodelio import (
    INT_MODEL_KIND,
    expected_int_shapes,
    load_int_model,
    save_int_model,
)
from golden.modelio import ModelFileError, SavedModel, save_model
from golden.quantize import quantize
from tests.golden.variants import make_config, random_params


def _model(name: str, *, weight_bits: int = 8, state_bits: int = 16) -> IntModel:
    config = make_config(name)
    calibration = np.random.default_rng(0).random((32, config.input_size))
    return quantize(config, random_params(config, 1), calibration, input_max=16,
                    weight_bits=weight_bits, state_bits=state_bits)


@pytest.mark.parametrize(("weight_bits", "state_bits", "weight_dtype", "bias_dtype"), [
    (8, 16, np.int8, np.int16), (4, 8, np.int8, np.int8), (12, 20, np.int16, np.int32),
])
def test_round_trip_keeps_every_array_exponent_and_format(tmp_path, variant, weight_bits,
                                                          state_bits, weight_dtype, bias_dtype):
    model = _model(variant, weight_bits=weight_bits, state_bits=state_bits)
    data = {"dataset": "digits", "resize": None, "calibration_images": 32}
    save_int_model(tmp_path / "model.int.npz", model, data=data)
    assert [p.name for p in tmp_path.iterdir()] == ["model.int.npz"]
    with np.load(tmp_path / "model.int.npz") as archive:
        stored = {name: archive[name] for name in archive.files}
    meta = json.loads(str(stored.pop("__meta__")))
    assert meta["kind"] == INT_MODEL_KIND and meta["format_version"] == 1
    assert set(stored) == set(expected_int_shapes(model.config))
    for name, array in stored.items():
        assert array.dtype == (bias_dtype if name.startswith("b") else weight_dtype), name

    loaded = load_int_model(tmp_path / "model.int.npz")
    assert loaded.data == data
    assert loaded.model.config == model.config and loaded.model.fmt == model.fmt
    for original, back in zip(model.layers, loaded.model.layers, strict=True):
        assert (back.w_exp, back.v_exp) == (original.w_exp, original.v_exp)
        for kind in ("W", "b", "U", "V"):
            a, b = getattr(original, kind), getattr(back, kind)
            assert (a is None) == (b is None), kind
            if a is not None:
                assert b.dtype == np.int64
                np.testing.assert_array_equal(a, b)
    x_q = np.random.default_rng(2).integers(0, 17, size=(10, model.config.input_size))
    np.testing.assert_array_equal(loaded.model.run(x_q).scores, model.run(x_q).scores)


def test_ffl_layer_1_holds_the_label_block_and_there_is_no_u():
    shapes = expected_int_shapes(make_config("ffl"))
    assert shapes["W1"] == (7, 9 + 4) and not any(name.startswith("U") for name in shapes)
    shapes = expected_int_shapes(make_config("ffcl-top-T2"))
    assert shapes["V1"] == (6, 4) and "V2" not in shapes and shapes["U3"] == (4, 4)


def _write(path, arrays, meta):
    np.savez(path, **arrays, **({} if meta is None else {"__meta__": np.array(meta)}))


def _set(meta, *keys_and_value):
    """A copy of ``meta`` with meta[k1][k2]... = value."""
    *keys, value = keys_and_value
    meta = json.loads(json.dumps(meta))
    target = meta
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    return meta


def _drop(mapping, key):
    return {k: v for k, v in mapping.items() if k != key}


CASES = [
    ("ffdl", lambda a, m: (a, None), "has no __meta__ entry"),
    ("ffdl", lambda a, m: (a, "{not json"), "not valid JSON"),
    ("ffdl", lambda a, m: (a, "[1, 2]"), "must be a JSON object"),
    ("ffdl", lambda a, m: (a, _drop(m, "kind")), "is a float model file, not an integer model"),
    ("ffdl", lambda a, m: (a, _set(m, "kind", "ffcl-hw test vectors")),
     "of kind 'ffcl-hw test vectors', not an integer model"),
    ("ffdl", lambda a, m: (a, _set(m, "format_version", 99)),
     "integer model format version 99; this ffcl-hw reads version 1"),
    ("ffdl", lambda a, m: (a, _set(m, "model", "algo", "bp")), "algo must be one of"),
    ("ffdl", lambda a, m: (a, _drop(m, "model")), "the configuration lacks 'model'"),
    ("ffdl", lambda a, m: (a, _set(m, "format", "weight_bits", 40)),
     "weight_bits must be an integer in 2..16, not 40"),
    ("ffdl", lambda a, m: (a, _set(m, "format", "mantissa", 3)), "malformed configuration"),
    ("ffdl", lambda a, m: (a, _set(_set(m, "format", "rsqrt_frac_bits", 4), "format",
                                   "rsqrt_index_bits", 11)),
     r"makes reciprocal table entries 0 .* at most 2 \* rsqrt_frac_bits \+ 2 = 10"),
    ("ffdl", lambda a, m: (a, _set(m, "layers", m["layers"][:1])),
     "layers must be a list of 2 exponent entries"),
    ("ffdl", lambda a, m: (a, _set(m, "layers", 0, {"w_exp": 3})),
     "layer 1 must give exactly w_exp and v_exp"),
    ("ffdl", lambda a, m: (a, _set(m, "layers", 1, "w_exp", 1.5)),
     "layer 2 w_exp must be an integer, not 1.5"),
    ("ffdl", lambda a, m: (a, _set(m, "layers", 0, "v_exp", 4)),
     "layer 1 has no feedback weights, so v_exp must be null, not 4"),
    ("ffcl-adjacent-T3", lambda a, m: (a, _set(m, "layers", 0, "v_exp", None)),
     "layer 1 v_exp must be an integer, not None"),
    ("ffdl", lambda a, m: (a, _set(m, "data", [1])), "data description must be an object"),
    ("ffdl", lambda a, m: (_drop(a, "U2"), m),
     r"missing arrays U2 needed by an integer FFDL network with hidden \[7, 5\]"),
    ("ffdl", lambda a, m: ({**a, "V9": np.zeros(2, np.int8)}, m),
     "arrays V9 that an integer FFDL network"),
    ("ffl", lambda a, m: ({**a, "U1": np.zeros((7, 4), np.int8)}, m),
     "arrays U1 that an integer FFL network"),
    ("ffl", lambda a, m: ({**a, "W1": a["W1"][:, :9]}, m),
     r"W1 has shape \(7, 9\), but the configuration needs \(7, 13\)"),
    ("ffdl", lambda a, m: ({**a, "W2": a["W2"].astype(np.float64)}, m),
     "W2 has dtype float64; an integer model stores signed integers"),
    ("ffdl", lambda a, m: ({**a, "U1": np.full((7, 4), True)}, m), "U1 has dtype bool"),
    ("ffdl", lambda a, m: ({**a, "W1": np.full((7, 9), 128, np.int16)}, m),
     r"W1 holds 128, outside the 8-bit weight range -127..127"),
    ("ffdl", lambda a, m: ({**a, "U2": np.full((5, 4), -128, np.int8)}, m),
     r"U2 holds -128, outside the 8-bit weight range -127..127"),
    ("ffcl-adjacent-T3", lambda a, m: ({**a, "V1": np.full((7, 5), 200, np.uint8)}, m),
     r"V1 holds 200, outside the 8-bit weight range"),
    ("ffdl", lambda a, m: ({**a, "b1": np.full(7, 40000, np.int32)}, m),
     r"b1 holds 40000, outside the 16-bit state range -32768..32767"),
    ("ffdl", lambda a, m: (a, _set(m, "layers", 1, "w_exp", -40)),
     "layer 2 W: scaler shift -.* is negative"),
    ("ffdl", lambda a, m: (a, {**m, "source": "run a"}),
     r"source must be an object with one of quantized_from, trained, not 'run a'"),
    ("ffdl", lambda a, m: (a, {**m, "source": {"quantized_from": {}, "trained": {}}}),
     r"source must be an object with one of quantized_from, trained"),
    ("ffdl", lambda a, m: (a, {**m, "source": {"copied": {}}}),
     r"source must be an object with one of quantized_from, trained, not \{'copied'"),
    ("ffdl", lambda a, m: (a, {**m, "source": {"quantized_from": {"digest": 7}}}),
     r"source quantized_from needs the float model's digest \(64 hexadecimal digits\)"),
    ("ffdl", lambda a, m: (a, {**m, "source": {"trained": "yes"}}),
     r"source trained must be an object, not 'yes'"),
]


@pytest.mark.parametrize(("name", "mutate", "message"), CASES,
                         ids=[f"{i}-{case[2][:30]}" for i, case in enumerate(CASES)])
def test_malformed_files_are_refused_with_the_reason(tmp_path, name, mutate, message):
    save_int_model(tmp_path / "good.npz", _model(name))
    with np.load(tmp_path / "good.npz") as archive:
        arrays = dict(archive)
    meta = json.loads(str(arrays.pop("__meta__")))
    arrays, new_meta = mutate(arrays, meta)
    _write(tmp_path / "bad.npz", arrays,
           new_meta if new_meta is None or isinstance(new_meta, str) else json.dumps(new_meta))
    with pytest.raises(ModelFileError, match=message) as error:
        load_int_model(tmp_path / "bad.npz")
    assert str(tmp_path / "bad.npz") in str(error.value)


def test_missing_non_npz_and_float_model_files(tmp_path):
    with pytest.raises(ModelFileError, match="no integer model file at .*absent.npz; "
                                             "quantize a run with `ffcl-hw quantize RUN`"):
        load_int_model(tmp_path / "absent.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ModelFileError, match="not a readable .npz integer model file"):
        load_int_model(tmp_path / "text.npz")
    config = make_config("ffdl")
    save_model(tmp_path / "model.npz", SavedModel(config=config, params=random_params(config, 0)))
    with pytest.raises(ModelFileError, match="model.npz is a float model file, not an integer"):
        load_int_model(tmp_path / "model.npz")


@pytest.mark.parametrize("source", [
    None,
    {"quantized_from": {"digest": "ab" * 32, "run": "/runs/d", "seed": 3}},
    {"trained": {"seed": 1, "epochs": 20}},
])
def test_the_source_of_an_integer_model_round_trips(tmp_path, source):
    save_int_model(tmp_path / "m.npz", _model("ffdl"), source=source)
    assert load_int_model(tmp_path / "m.npz").source == source
