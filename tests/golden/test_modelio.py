"""Model files: complete round trips and clear refusals of malformed files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from golden.config import ModelConfig, TrainConfig
from golden.modelio import ModelFileError, SavedModel, load_model, model_digest, save_model
from tests.golden.variants import make_config, random_params


def test_round_trip_keeps_every_array_and_the_whole_configuration(tmp_path, variant):
    config = make_config(variant)
    model = SavedModel(config=config, params=random_params(config, 1),
                       train_config=TrainConfig(epochs=7, seed=3),
                       data={"dataset": "digits", "resize": None})
    save_model(tmp_path / "m.npz", model)
    loaded = load_model(tmp_path / "m.npz")
    assert loaded.config == config and loaded.train_config == model.train_config
    assert loaded.data == model.data
    for name, array in model.params.to_arrays().items():
        np.testing.assert_array_equal(loaded.params.to_arrays()[name], array)
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def _write(path, arrays, meta):
    np.savez(path, **arrays, **({} if meta is None else {"__meta__": np.array(meta)}))


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda a, m: (a, None), "no __meta__ entry"),
    (lambda a, m: (a, "{not json"), "not valid JSON"),
    (lambda a, m: (a, json.dumps({**m, "format_version": 99})), "format version 99"),
    (lambda a, m: (a, json.dumps({**m, "model": {**m["model"], "algo": "bp"}})),
     "algo must be one of"),
    (lambda a, m: ({k: v for k, v in a.items() if k != "U2"}, json.dumps(m)),
     "missing arrays U2"),
    (lambda a, m: ({**a, "V9": np.zeros(2)}, json.dumps(m)), "V9 that a FFDL network"),
    (lambda a, m: ({**a, "W1": np.zeros((7, 3))}, json.dumps(m)),
     r"W1 has shape \(7, 3\), but the configuration needs \(7, 9\)"),
    (lambda a, m: ({**a, "b1": np.full(7, np.nan)}, json.dumps(m)), "NaN or infinite"),
    (lambda a, m: ({**a, "W1": (a["W1"] * 10).astype(np.int64)}, json.dumps(m)),
     "array W1 has dtype int64; a float model stores floating-point weights"),
    (lambda a, m: ({**a, "U2": a["U2"] > 0}, json.dumps(m)), "array U2 has dtype bool"),
])
def test_malformed_files_are_refused_with_the_reason(tmp_path, mutate, message):
    config = make_config("ffdl")
    save_model(tmp_path / "good.npz", SavedModel(config=config, params=random_params(config, 0)))
    with np.load(tmp_path / "good.npz") as archive:
        arrays = dict(archive)
    meta = json.loads(str(arrays.pop("__meta__")))
    arrays, meta_text = mutate(arrays, meta)
    _write(tmp_path / "bad.npz", arrays, meta_text)
    with pytest.raises(ModelFileError, match=message):
        load_model(tmp_path / "bad.npz")


def test_missing_and_non_npz_files(tmp_path):
    with pytest.raises(ModelFileError, match="no model file"):
        load_model(tmp_path / "absent.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ModelFileError, match="not a readable .npz"):
        load_model(tmp_path / "text.npz")


def test_the_digest_names_the_weights_and_configuration_and_nothing_else(tmp_path):
    # Hidden 7,7: V1 and W2 have the same shape.
    config = ModelConfig(algo="ffcl", input_size=9, num_classes=4, hidden=(7, 7), loops=3)
    model = SavedModel(config=config, params=random_params(config, 1).astype(np.float32),
                       train_config=TrainConfig(seed=3), data={"dataset": "digits"})
    digest = model_digest(model)
    assert len(digest) == 64 and int(digest, 16) >= 0
    save_model(tmp_path / "m.npz", model)
    assert model_digest(load_model(tmp_path / "m.npz")) == digest
    # Where it was trained and how does not change which model it is.
    same = SavedModel(config=config, params=model.params, train_config=TrainConfig(seed=4),
                      data={"dataset": "mnist"})
    assert model_digest(same) == digest
    # One ulp of one weight, or another threshold, does.
    nudged = model.params.copy()
    nudged.V[0][2, 1] = np.nextafter(nudged.V[0][2, 1], np.float32(np.inf))
    assert model_digest(SavedModel(config=config, params=nudged)) != digest
    other = type(config)(**{**config.to_dict(), "theta": 0.25})
    assert model_digest(SavedModel(config=other, params=model.params)) != digest
    # The same numbers under another array's name are another model.
    swapped = model.params.copy()
    swapped.W[1], swapped.V[0] = swapped.V[0], swapped.W[1]
    assert swapped.W[1].shape == model.params.W[1].shape
    assert model_digest(SavedModel(config=config, params=swapped)) != digest
