# amaranth: UnusedElaboratable=no
# (A constructor that raises leaves a half-built Elaboratable behind, which Amaranth would
# report as unused; the first line is Amaranth's own per-file switch for that lint.)
"""Each component refuses bad parameters with its exact message, takes the smallest good ones."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from amaranth.hdl import Fragment

from rtl.argmax import Argmax
from rtl.feedback_buffer import FeedbackBuffer
from rtl.goodness import GoodnessDatapath
from rtl.mac_lanes import MacLanes
from rtl.normaliser import Rsqrt, Scaler, SplitScaler
from rtl.params import check_positive_int

# The smallest parameters each component accepts; every refusal below changes one of them.
MINIMAL: dict[type, dict[str, Any]] = {
    MacLanes: {"lanes": 1, "weight_bits": 2, "input_bits": 1, "acc_bits": 2,
               "shared_lanes": 0, "side_bits": 2, "clear_ahead": False, "held_sums": False},
    Rsqrt: {"sq_bits": 1, "index_bits": 2, "frac_bits": 1, "held": False,
            "input_register": True, "keep": False},
    Scaler: {"acc_bits": 2, "r_bits": 1, "shift_bits": 1, "no_reset": False,
             "held_r": False},
    SplitScaler: {"acc_bits": 2, "r_bits": 1, "shift_bits": 1, "operand_bits": 2,
                  "product_latency": 1},
    GoodnessDatapath: {"labels": 2, "lanes": 1, "state_bits": 2, "weight_bits": 2,
                       "score_bits": 1, "product_latency": 1, "operand_bits": 2,
                       "lean": False, "fused_relu": False},
    Argmax: {"labels": 2, "score_bits": 1, "read_port": False},
    FeedbackBuffer: {"depth": 1, "width": 1},
}

REFUSALS: list[tuple[type, dict[str, Any], type[Exception], str]] = [
    (MacLanes, {"lanes": 0}, TypeError, "Lane count must be a positive integer, not 0"),
    (MacLanes, {"lanes": -3}, TypeError, "Lane count must be a positive integer, not -3"),
    (MacLanes, {"lanes": 2.0}, TypeError, "Lane count must be a positive integer, not 2.0"),
    (MacLanes, {"lanes": "4"}, TypeError, "Lane count must be a positive integer, not '4'"),
    (MacLanes, {"lanes": True}, TypeError, "Lane count must be a positive integer, not True"),
    (MacLanes, {"lanes": None}, TypeError, "Lane count must be a positive integer, not None"),
    (MacLanes, {"weight_bits": 1}, TypeError,
     "Weight width must be an integer of at least 2, not 1"),
    (MacLanes, {"input_bits": 0}, TypeError, "Input width must be a positive integer, not 0"),
    (MacLanes, {"acc_bits": 1}, TypeError,
     "Accumulator width must be an integer of at least 2, not 1"),
    (MacLanes, {"shared_lanes": -1}, TypeError,
     "Shared lane count must be an integer of at least 0, not -1"),
    (MacLanes, {"shared_lanes": 2}, ValueError,
     "Shared lane count must be at most the lane count 1, not 2"),
    (MacLanes, {"side_bits": 1}, TypeError,
     "Side operand width must be an integer of at least 2, not 1"),
    (MacLanes, {"clear_ahead": 1}, TypeError, "Clear ahead must be True or False, not 1"),
    (MacLanes, {"held_sums": 1}, TypeError, "Held sums must be True or False, not 1"),
    (MacLanes, {"shared_lanes": 1, "input_bits": 2}, ValueError,
     "Shared lanes multiply 2-bit signed operands: weights of 2 bits and inputs of 2 bits "
     "do not fit (at most 2 and 1)"),
    (SplitScaler, {"acc_bits": 1}, TypeError,
     "Accumulator width must be an integer of at least 2, not 1"),
    (SplitScaler, {"r_bits": 0}, TypeError, "Reciprocal width must be a positive integer, not 0"),
    (SplitScaler, {"shift_bits": 0}, TypeError,
     "Shift width must be a positive integer, not 0"),
    (SplitScaler, {"operand_bits": 1}, TypeError,
     "Operand width must be an integer of at least 2, not 1"),
    (SplitScaler, {"product_latency": 0}, TypeError,
     "Product latency must be a positive integer, not 0"),
    (SplitScaler, {"acc_bits": 4}, ValueError,
     "A 4-bit accumulator times a 1-bit reciprocal does not split onto 2-bit signed "
     "multipliers (at most 3 and 1 bits)"),
    (Rsqrt, {"sq_bits": 0}, TypeError,
     "Sum-of-squares width must be a positive integer, not 0"),
    (Rsqrt, {"index_bits": 1}, TypeError,
     "Table index width must be an integer of at least 2, not 1"),
    (Rsqrt, {"frac_bits": 0}, TypeError, "Table precision must be a positive integer, not 0"),
    (Rsqrt, {"held": 1}, TypeError, "Held must be True or False, not 1"),
    (Rsqrt, {"input_register": 1}, TypeError, "Input register must be True or False, not 1"),
    (Rsqrt, {"keep": 1}, TypeError, "Keep must be True or False, not 1"),
    (Scaler, {"no_reset": 1}, TypeError, "No reset must be True or False, not 1"),
    (Scaler, {"held_r": 1}, TypeError, "Held r must be True or False, not 1"),
    (Scaler, {"acc_bits": 1}, TypeError,
     "Accumulator width must be an integer of at least 2, not 1"),
    (Scaler, {"r_bits": 0}, TypeError, "Reciprocal width must be a positive integer, not 0"),
    (Scaler, {"shift_bits": 0}, TypeError, "Shift width must be a positive integer, not 0"),
    (GoodnessDatapath, {"labels": 1}, TypeError,
     "Label count must be an integer of at least 2, not 1"),
    (GoodnessDatapath, {"lean": "yes"}, TypeError, "Lean must be True or False, not 'yes'"),
    (GoodnessDatapath, {"fused_relu": 1}, TypeError, "Fused ReLU must be True or False, not 1"),
    (GoodnessDatapath, {"lanes": 0}, TypeError,
     "Label lane count must be a positive integer, not 0"),
    (GoodnessDatapath, {"labels": 10, "lanes": 11}, ValueError,
     "Label lane count must be at most the label count 10, not 11"),
    (GoodnessDatapath, {"labels": 2, "lanes": 3}, ValueError,
     "Label lane count must be at most the label count 2, not 3"),
    (GoodnessDatapath, {"state_bits": 1}, TypeError,
     "State width must be an integer of at least 2, not 1"),
    (GoodnessDatapath, {"weight_bits": 1}, TypeError,
     "Weight width must be an integer of at least 2, not 1"),
    (GoodnessDatapath, {"score_bits": 0}, TypeError,
     "Score width must be a positive integer, not 0"),
    (GoodnessDatapath, {"product_latency": 0}, TypeError,
     "Product latency must be a positive integer, not 0"),
    (GoodnessDatapath, {"operand_bits": 1}, TypeError,
     "Operand width must be an integer of at least 2, not 1"),
    (GoodnessDatapath, {"state_bits": 3}, ValueError,
     "Borrowed 2-bit multipliers square states and weights of at most 2 bits, not 3"),
    (Argmax, {"labels": 1}, TypeError, "Label count must be an integer of at least 2, not 1"),
    (Argmax, {"score_bits": 0}, TypeError, "Score width must be a positive integer, not 0"),
    (Argmax, {"read_port": 1}, TypeError, "Read port must be True or False, not 1"),
    (FeedbackBuffer, {"depth": 0}, TypeError, "Buffer depth must be a positive integer, not 0"),
    (FeedbackBuffer, {"width": 0}, TypeError,
     "Activation width must be a positive integer, not 0"),
]


def _id(row: tuple[type, dict[str, Any], type[Exception], str]) -> str:
    cls, changes, _, _ = row
    return cls.__name__ + "-" + "-".join(f"{k}={v!r}" for k, v in changes.items())


@pytest.mark.parametrize(("cls", "changes", "error", "message"), REFUSALS,
                         ids=[_id(row) for row in REFUSALS])
def test_refuses_bad_parameter(cls: type, changes: dict[str, Any], error: type[Exception],
                               message: str) -> None:
    with pytest.raises(error) as info:
        cls(**{**MINIMAL[cls], **changes})
    assert type(info.value) is error
    assert str(info.value) == message


@pytest.mark.parametrize("cls", list(MINIMAL), ids=lambda cls: cls.__name__)
def test_accepts_minimal_parameters(cls: type) -> None:
    # The boundary values just above each refusal build and elaborate.
    dut = cls(**MINIMAL[cls])
    Fragment.get(dut, platform=None)
    for name, value in MINIMAL[cls].items():
        assert getattr(dut, name) == value


@pytest.mark.parametrize("cls", list(MINIMAL), ids=lambda cls: cls.__name__)
def test_parameters_are_keyword_only(cls: type) -> None:
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert [p.name for p in parameters] == list(MINIMAL[cls])
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters)
    with pytest.raises(TypeError):
        cls(*MINIMAL[cls].values())


def test_every_component_refusal_is_covered() -> None:
    # Each parameter of each component has at least one refusal row above.
    covered = {(cls, name) for cls, changes, _, _ in REFUSALS for name in changes}
    missing = {(cls.__name__, name) for cls, params in MINIMAL.items() for name in params
               if (cls, name) not in covered}
    assert not missing


@pytest.mark.parametrize(("value", "minimum", "message"), [
    (0, 1, "Thing must be a positive integer, not 0"),
    (1, 2, "Thing must be an integer of at least 2, not 1"),
    (False, 0, "Thing must be an integer of at least 0, not False"),
    (1.5, 1, "Thing must be a positive integer, not 1.5"),
])
def test_check_positive_int_message(value: object, minimum: int, message: str) -> None:
    with pytest.raises(TypeError) as info:
        check_positive_int("Thing", value, minimum=minimum)
    assert str(info.value) == message


def test_check_positive_int_returns_value() -> None:
    assert check_positive_int("Thing", 1) == 1
    assert check_positive_int("Thing", 0, minimum=0) == 0
