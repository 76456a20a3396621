"""The app's icons: SVG line drawings in resources/icons, drawn in the palette's text colour (``currentColor``) and
rendered at twice their size so they stay sharp on high-DPI screens."""

from __future__ import annotations

from functools import lru_cache

from PySide6.QtCore import QByteArray, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer

import resources

SIZES = (16, 24, 32, 48, 64)


def icon(name: str, color: QColor | str | None = None) -> QIcon:
    """``resources/icons/<name>.svg`` as an icon, its ``currentColor`` strokes in ``color`` (default black)."""
    return _icon(name, QColor(color).name(QColor.NameFormat.HexArgb) if color is not None else "#ff000000")


@lru_cache(maxsize=128)
def _icon(name: str, color: str) -> QIcon:
    svg = resources.path(f"icons/{name}.svg").read_text(encoding="utf-8")
    rgb = QColor(color)
    renderer = QSvgRenderer(QByteArray(svg.replace("currentColor", rgb.name()).encode("utf-8")))
    found = QIcon()
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setOpacity(rgb.alphaF())
        renderer.render(painter, QRectF(0, 0, size, size))
        painter.end()
        found.addPixmap(QPixmap.fromImage(image))
    return found


def app_icon() -> QIcon:
    return _icon("llamadesk", "#ff000000")  # the logo keeps its own colours (it has no currentColor)
