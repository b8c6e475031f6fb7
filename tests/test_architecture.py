"""The pictures of docs/architecture.md against the gateware, so they cannot go stale quietly.

docs/architecture.toml names components (by class) and their ports; here each class is
imported and the design is elaborated for a small model in a few configurations, and every
port the description draws must be a member of an instance's signature, inputs In and
outputs Out (a dotted port reaches into an interface, flips included). In the other
direction, every gateware component of the elaborated designs must be drawn or listed under
``omit``. Components marked ``planned`` (not written yet) are reported as expected
failures naming exactly what is missing, until they exist; then they are checked like the
rest. Finally every picture must have been drawn from the description as it is now.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.lib import wiring
from amaranth.lib.wiring import Flow

from golden.quantize import quantize
from tests.golden.variants import make_config, random_params

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _renderer() -> ModuleType:
    """docs/architecture.py (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location("architecture_doc", DOCS / "architecture.py")
    module = importlib.util.module_from_spec(spec)
    # Registered first: its dataclass looks itself up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ARCH = _renderer()
DESCRIPTION = ARCH.load()
PANELS = DESCRIPTION["panel"]
UNITS = [(panel["name"], spec) for panel in PANELS for spec in panel.get("component", [])
         if "class" in spec]
STEPS = [(panel["name"], spec) for panel in PANELS for spec in panel.get("component", [])
         if "code" in spec]
OMITTED = {entry["class"] for entry in DESCRIPTION.get("omit", [])}


def _designs() -> list[tuple[wiring.Component, object]]:
    """Small designs that between them contain every gateware component the pictures draw:
    a block-RAM core with dedicated multipliers, and an iCEBreaker top around the host link
    around a loadable two-bank core with shared multipliers; each with the platform it is
    elaborated for (the board top takes its pins from the board's platform)."""
    from rtl.board import BoardTop, board_info
    from rtl.core import Core
    from rtl.host_link import HostLink

    config = make_config("ffcl-adjacent-T3")
    rng = np.random.default_rng(1)
    model = quantize(config, random_params(config, 0),
                     rng.uniform(0, 1, size=(16, config.input_size)), input_max=16)
    loadable = Core(model, lanes=4, label_lanes=2, shared=True, weights="loadable", banks=2)
    return [(Core(model, lanes=2), None),
            (BoardTop(HostLink(loadable, divisor=4), board="icebreaker"),
             board_info("icebreaker").make_platform())]


@functools.cache
def _instances() -> dict[str, list[wiring.Component]]:
    """Every wiring.Component of the elaborated designs, by "module.Class"."""
    found: dict[str, list[wiring.Component]] = {}

    def walk(fragment: Fragment) -> None:
        for origin in fragment.origins or ():
            if isinstance(origin, wiring.Component):
                cls = type(origin)
                found.setdefault(f"{cls.__module__}.{cls.__qualname__}", []).append(origin)
        for sub, _name, _src_loc in fragment.subfragments:
            walk(sub)

    for design, platform in _designs():
        walk(Fragment.get(design, platform))
    return found


def _flow(component: wiring.Component, port: str) -> Flow | None:
    """The direction of ``port`` ("a" or "a.b.c") as the component sees it (Out: it drives
    it), or None if the signature has no such member."""
    # An In member's ``signature`` comes flipped already, so the flow of the last step,
    # read through it, is the direction seen from the component.
    members, member = component.signature.members, None
    for step in port.split("."):
        if member is not None:
            if not member.is_signature:
                return None
            members = member.signature.members
        if step not in members:
            return None
        member = members[step]
    return member.flow


def _import(path: str) -> tuple[Any, str | None]:
    """The object at "module.Class" (or "module:attribute"), or why it cannot be had."""
    module_name, sep, attribute = path.partition(":")
    if not sep:
        module_name, _, attribute = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        return None, f"no module {error.name}"
    if not hasattr(module, attribute):
        return None, f"{module_name} has no {attribute}"
    return getattr(module, attribute), None


def _port_problems(spec: dict[str, Any], instances: list[wiring.Component]) -> list[str]:
    problems = []
    for side, expected in (("inputs", Flow.In), ("outputs", Flow.Out)):
        for port in ARCH.port_names(spec.get(side, [])):
            flows = {_flow(instance, port) for instance in instances} - {None}
            if not flows:
                problems.append(f"no port {port!r}")
            elif expected not in flows:
                problems.append(f"port {port!r} is {flows.pop().name}, drawn as "
                                f"{expected.name}")
    return problems


@pytest.mark.parametrize(("panel", "spec"), UNITS,
                         ids=[f"{panel}-{spec['name']}" for panel, spec in UNITS])
def test_every_drawn_component_and_port_exists(panel, spec):
    cls, missing = _import(spec["class"])
    if missing:
        ports = ", ".join(ARCH.port_names(spec.get("inputs", []) + spec.get("outputs", [])))
        message = (f"{spec['class']} ({panel} panel) does not exist: {missing}; the picture "
                   f"also draws its ports {ports or '(none)'}")
        if spec.get("planned"):
            pytest.xfail(f"planned: {message}")
        pytest.fail(message)
    assert isinstance(cls, type) and issubclass(cls, wiring.Component), \
        f"{spec['class']} is not a wiring.Component"
    if "pins" in spec:
        # A board top's ports are the board's pins, which it requests from its platform
        # (rtl.board): each drawn port must be a resource, or a subsignal of one, there.
        from rtl.board import board_info

        platform = board_info(spec["pins"]).platform
        names = {r.name for r in platform.resources} | {
            io.name for r in platform.resources for io in r.ios if hasattr(io, "name")}
        ports = ARCH.port_names(spec.get("inputs", []) + spec.get("outputs", []))
        missing = [port for port in ports if port not in names]
        assert not missing, (f"{spec['class']} ({panel} panel): {platform.__name__} has no "
                             f"pin {', '.join(missing)}")
        return
    instances = _instances().get(spec["class"], [])
    assert instances, (f"{spec['class']} exists but the test's designs contain no instance "
                       "of it: add a configuration to _designs() that uses it")
    problems = _port_problems(spec, instances)
    assert not problems, f"{spec['class']} ({panel} panel): " + "; ".join(problems)
    assert not spec.get("planned"), (f"{spec['class']} now exists with every drawn port: "
                                      "drop its `planned = true` from docs/architecture.toml")


def test_every_gateware_component_is_drawn_or_omitted():
    drawn = {spec["class"] for _panel, spec in UNITS}
    ours = {name for name in _instances() if name.startswith("rtl.")
            and not name.rpartition(".")[2].startswith("_")}
    undrawn = sorted(ours - drawn - OMITTED)
    assert not undrawn, ("components of the gateware that docs/architecture.toml neither "
                         f"draws nor omits: {', '.join(undrawn)}")
    # An omission must name something real, or it hides nothing.
    stale = sorted(name for name in OMITTED if _import(name)[1])
    assert not stale, f"docs/architecture.toml omits classes that do not exist: {stale}"


@pytest.mark.parametrize(("panel", "spec"), STEPS,
                         ids=[f"{panel}-{spec['name']}" for panel, spec in STEPS])
def test_every_flow_step_names_real_code(panel, spec):
    _obj, missing = _import(spec["code"])
    assert missing is None, f"{spec['code']} ({panel} panel, {spec['name']}): {missing}"


@pytest.mark.parametrize("panel", PANELS, ids=[panel["name"] for panel in PANELS])
def test_every_connection_joins_drawn_ports(panel):
    boxes = ARCH.boxes(panel)
    for connection in panel.get("connection", []):
        for role in ("from", "to"):
            ARCH.endpoint(boxes, connection[role], role)   # raises, naming the bad end


@pytest.mark.parametrize("panel", PANELS, ids=[panel["name"] for panel in PANELS])
def test_every_picture_is_drawn_from_this_description(panel):
    from PIL import Image

    path = DOCS / panel["file"]
    assert path.is_file(), f"{path} is missing: run `python docs/architecture.py`"
    with Image.open(path) as image:
        source = image.text.get(ARCH.SOURCE_KEY)
    assert source == ARCH.source_digest(), (
        f"{path} was drawn from another docs/architecture.toml or docs/architecture.py "
        "than the ones in the repository: run `python docs/architecture.py` and commit "
        "the pictures")


def test_a_missing_port_or_a_wrong_direction_is_reported():
    # The checker itself: a made-up port and an output drawn as an input must be caught.
    argmax = _instances()["rtl.argmax.Argmax"]
    spec = {"inputs": ["start", "label", "nonexistent"], "outputs": ["done"]}
    assert _port_problems(spec, argmax) == ["port 'label' is Out, drawn as In",
                                            "no port 'nonexistent'"]
    # Flips are followed into interfaces: the weight store's read address comes in.
    store = _instances()["rtl.weight_store.WeightStore"]
    assert {_flow(s, "read.addr") for s in store} == {Flow.In}
    assert {_flow(s, "read.data") for s in store} == {Flow.Out}
    assert {_flow(s, "read.nothing") for s in store} == {None}
