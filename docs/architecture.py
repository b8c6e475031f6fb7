"""Draw the block diagrams of docs/architecture.md from docs/architecture.toml.

    python docs/architecture.py        # writes docs/architecture-*.png

The description (``architecture.toml``) is the thing to edit: panels of components, each
with its ports (inputs on the left edge, outputs on the right) and a position, and the
connections between ports. This script only draws it; ``tests/test_architecture.py``
checks that every component and port it names exists in the gateware, and, through a
digest of the description and this script that every picture carries (:func:`source_digest`),
that the committed pictures were drawn from them.

Coordinates are in grid units (half an inch), x to the right and y downwards, (x, y) the
top-left corner of a box. A connection runs from its source port to its target port with
right-angled turns: without ``route`` it turns once, halfway between the two; ``route =
[x1, y1, x2, ...]`` goes horizontally to x1, vertically to y1, horizontally to x2 and so on,
then vertically to the target's row and into the target. A whole box is an end too
("Name", or "Name@top" / "@bottom" / "@left" / "@right"); leaving or entering a box's top
or bottom, the route starts or ends vertically.
"""

from __future__ import annotations

import hashlib
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DESCRIPTION", "SOURCE_KEY", "Box", "boxes", "endpoint", "load", "main",
           "port_names", "render", "source_digest"]

#: The description this script draws (and the test checks).
DESCRIPTION = Path(__file__).with_name("architecture.toml")
#: The PNG text entry that records which description and script drew the picture.
SOURCE_KEY = "Source"

_INCH = 0.5          # one grid unit
_TITLE = 0.62        # height of a box's title row
_NOTE = 0.36         # height of the note under the title
_ROW = 0.36          # height of one port row (or text line)
_PAD = 0.12          # space under the last row
_STUB = 0.95         # length of the stub outside a frame's port
_COLOURS = {"data": "#1f3b73", "control": "#7a7a7a", "shared": "#b5651d", "file": "#2e6b30"}


@dataclass
class Box:
    """A drawn component: geometry and the anchor of every port (x, y in grid units)."""

    name: str
    spec: dict[str, Any]
    x: float
    y: float
    w: float
    h: float
    ports: dict[str, tuple[float, float, str]]   # name -> (x, y, "in" | "out")


def source_digest() -> str:
    """What a picture records of its source: a SHA-256 of the description and this script,
    so that a test can tell a picture drawn from an older description."""
    digest = hashlib.sha256(DESCRIPTION.read_bytes() + Path(__file__).read_bytes())
    return f"docs/architecture.toml + docs/architecture.py, sha256 {digest.hexdigest()[:16]}"


def load(path: Path = DESCRIPTION) -> dict[str, Any]:
    """The description as a dictionary (``panel``: a list of panels)."""
    with open(path, "rb") as f:
        return tomllib.load(f)


def port_names(ports: list[Any]) -> list[str]:
    """Names of a port list whose entries are names or ``{name, y}`` tables."""
    return [p if isinstance(p, str) else p["name"] for p in ports]


def boxes(panel: dict[str, Any]) -> dict[str, Box]:
    """Geometry of every component of ``panel``, by name."""
    result = {}
    for spec in panel.get("component", []):
        inputs, outputs = spec.get("inputs", []), spec.get("outputs", [])
        lines = spec.get("lines", [])
        top = _TITLE + (_NOTE if spec.get("note") or spec.get("planned") else 0)
        rows = max(len(inputs), len(outputs), len(lines))
        h = spec.get("h", top + rows * _ROW + _PAD)
        x, y = spec["at"]
        w = spec["w"]
        ports = {}
        for side, listed, edge in (("in", inputs, x), ("out", outputs, x + w)):
            for i, port in enumerate(listed):
                name = port if isinstance(port, str) else port["name"]
                row_y = port["y"] if isinstance(port, dict) else y + top + (i + 0.5) * _ROW
                ports[name] = (edge, row_y, side)
        result[spec["name"]] = Box(spec["name"], spec, x, y, w, h, ports)
    return result


def endpoint(boxes_: dict[str, Box], ref: str, role: str) -> tuple[float, float, bool]:
    """The anchor of ``"Component.port"``, or of a box's edge for ``"Component"`` (right
    edge when leaving, left when arriving) or ``"Component@top"`` (``bottom``, ``left``,
    ``right``), and whether the line meets it horizontally.

    Raises
    ------
    KeyError
        If the component, the port or the side is not in the description.
    """
    ref, _, side = ref.partition("@")
    name, _, port = ref.partition(".")
    if name not in boxes_:
        raise KeyError(f"connection end {ref!r}: no component {name!r} in this panel")
    box = boxes_[name]
    if not port:
        side = side or ("right" if role == "from" else "left")
        anchors = {"left": (box.x, box.y + box.h / 2, True),
                   "right": (box.x + box.w, box.y + box.h / 2, True),
                   "top": (box.x + box.w / 2, box.y, False),
                   "bottom": (box.x + box.w / 2, box.y + box.h, False)}
        if side not in anchors:
            raise KeyError(f"connection end {ref}@{side}: a side is one of "
                           f"{', '.join(anchors)}")
        return anchors[side]
    if port not in box.ports:
        raise KeyError(f"connection end {ref!r}: {name} has no port {port!r} in the "
                       f"description (it has {', '.join(box.ports) or 'none'})")
    x, y, _ = box.ports[port]
    return x, y, True


def _path(start: tuple[float, float, bool], end: tuple[float, float, bool],
          route: list[float] | None) -> list[tuple[float, float]]:
    """Right-angled polyline from ``start`` to ``end``: ``route`` gives the coordinate of
    each turn, alternating x and y (starting with x when the line leaves horizontally)."""
    (xs, ys, leave_h), (xt, yt, arrive_h) = start, end
    if route is None:
        route = [(xs + xt) / 2] if leave_h and arrive_h else []
    points = [(xs, ys)]
    x, y, horizontal = xs, ys, leave_h
    for value in route:
        x, y = (value, y) if horizontal else (x, value)
        points.append((x, y))
        horizontal = not horizontal
    points += [(x, yt), (xt, yt)] if arrive_h else [(xt, y), (xt, yt)]
    # Drop repeated points so the arrow head keeps the direction of the last segment.
    return [pt for i, pt in enumerate(points) if i == 0 or pt != points[i - 1]]


def render(panel: dict[str, Any], out: Path) -> None:
    """Draw one panel to the PNG ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch, Polygon

    geometry = boxes(panel)
    width, height = panel["size"]
    fig = plt.figure(figsize=(width * _INCH, height * _INCH))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    if panel.get("title"):
        ax.text(0.3, 0.45, panel["title"], fontsize=13, fontweight="bold", va="center")

    frames = [b for b in geometry.values() if b.spec.get("kind") == "frame"]
    units = [b for b in geometry.values() if b.spec.get("kind") != "frame"]
    for box in frames + units:
        frame = box.spec.get("kind") == "frame"
        planned = box.spec.get("planned", False)
        ax.add_patch(FancyBboxPatch(
            (box.x, box.y), box.w, box.h, boxstyle="round,pad=0,rounding_size=0.12",
            linewidth=1.6 if frame else 1.2, edgecolor="#333333",
            linestyle=(0, (5, 3)) if planned else "solid",
            facecolor="#f7f7f7" if frame else ("#fffbea" if planned else "#e8eef8"),
            zorder=1 if frame else 3))
        title = box.spec.get("label", box.name)
        note = box.spec.get("note", "")
        if planned:
            note = f"planned: {note}" if note else "planned"
        ax.text(box.x + (0.2 if frame else box.w / 2), box.y + _TITLE / 2, title,
                fontsize=11 if frame else 10, fontweight="bold",
                ha="left" if frame else "center", va="center", zorder=5)
        if note:
            ax.text(box.x + (0.2 if frame else box.w / 2), box.y + _TITLE + _NOTE / 2 - 0.08,
                    note, fontsize=8.5, style="italic", color="#444444",
                    ha="left" if frame else "center", va="center", zorder=5)
        top = box.y + _TITLE + (_NOTE if note else 0)
        for i, line in enumerate(box.spec.get("lines", [])):
            ax.text(box.x + box.w / 2, top + (i + 0.5) * _ROW, line, fontsize=9,
                    ha="center", va="center", zorder=5, family="monospace")
        # A frame port's label may be moved along its stub ({name, y, dx}), off a line
        # that passes by or off the frame's own border.
        shift = {port["name"]: port.get("dx", 0.0)
                 for port in box.spec.get("inputs", []) + box.spec.get("outputs", [])
                 if isinstance(port, dict)}
        for name, (px, py, side) in box.ports.items():
            inward = side == "in"
            # Port labels sit inside the box, next to their edge (a frame's on its stub,
            # outside, where no line arrives); a small triangle on the edge points the
            # way the data goes.
            if frame:
                ax.text(px + (-_STUB / 2 if inward else _STUB / 2) + shift.get(name, 0.0),
                        py - 0.07, name,
                        fontsize=9.5, family="monospace", ha="center", va="bottom", zorder=5)
            else:
                ax.text(px + (0.14 if inward else -0.14), py, name, fontsize=9.5,
                        family="monospace", ha="left" if inward else "right", va="center",
                        zorder=5)
            tip = 0.16
            ax.add_patch(Polygon([(px - tip / 2, py - tip / 2), (px - tip / 2, py + tip / 2),
                                  (px + tip / 2, py)], closed=True, color="#333333",
                                 zorder=6))
            if frame:
                # A frame's ports face the outside world: a stub shows the pin.
                sx = px - _STUB if inward else px + _STUB
                ax.annotate("", xy=(px if inward else sx, py),
                            xytext=(sx if inward else px, py),
                            arrowprops={"arrowstyle": "-|>", "color": "#333333", "lw": 1.2},
                            zorder=2)

    for conn in panel.get("connection", []):
        start = endpoint(geometry, conn["from"], "from")
        end = endpoint(geometry, conn["to"], "to")
        points = _path(start, end, conn.get("route"))
        colour = _COLOURS[conn.get("kind", "data")]
        style = (0, (4, 2)) if conn.get("kind") in ("control", "shared") else "solid"
        xs, ys = zip(*points, strict=True)
        ax.plot(xs[:-1], ys[:-1], color=colour, linewidth=1.3, linestyle=style, zorder=4,
                solid_capstyle="butt")
        ax.annotate("", xy=points[-1], xytext=points[-2],
                    arrowprops={"arrowstyle": "-|>", "color": colour, "lw": 1.3,
                                "linestyle": "solid", "shrinkA": 0, "shrinkB": 0},
                    zorder=4)
        if conn.get("label"):
            lx, ly = conn.get("label_at") or _label_position(points)
            ax.text(lx, ly - 0.1, conn["label"], fontsize=8.5, color=colour, ha="center",
                    va="bottom", zorder=7,
                    bbox={"boxstyle": "square,pad=0.08", "facecolor": "white",
                          "edgecolor": "none", "alpha": 0.85})

    for note in panel.get("text", []):
        ax.text(*note["at"], note["text"], fontsize=note.get("size", 9.5), va="top",
                ha="left", color="#333333", zorder=7)
    fig.savefig(out, dpi=panel.get("dpi", 110), metadata={SOURCE_KEY: source_digest()})
    plt.close(fig)


def _label_position(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Middle of the longest horizontal segment."""
    segments = list(zip(points, points[1:], strict=False))
    best = max(segments, key=lambda s: abs(s[1][0] - s[0][0]) if s[0][1] == s[1][1] else -1)
    (x1, y1), (x2, _) = best
    return (x1 + x2) / 2, y1


def main(argv: list[str] | None = None) -> int:
    """Render every panel of the description next to it."""
    description = load()
    for panel in description["panel"]:
        out = DESCRIPTION.with_name(panel["file"])
        render(panel, out)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
