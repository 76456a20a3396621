"""The look of the whole app: Qt's Fusion style with a light or a dark palette that follows the system's colour
scheme (``LLAMADESK_THEME=light|dark`` fixes one), and one style sheet for the sidebar, the page headers and the
titled sections. Widgets use palette roles, so both palettes apply everywhere."""

from __future__ import annotations

import os
from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

ENV_THEME = "LLAMADESK_THEME"


@dataclass(frozen=True)
class Colors:
    window: str
    panel: str  # the sidebar and section backgrounds
    base: str  # text fields, tables, the transcript
    alternate: str
    text: str
    muted: str  # secondary text: purposes, subtitles, notes
    border: str
    accent: str
    accent_text: str
    error: str
    success: str
    warning: str
    trained: str  # the background of the tokens the model learns from, in the dataset preview


# Every colour that writes text (muted, accent, error, success, warning) reads at a contrast of at least 4.5:1 on each
# background (WCAG AA for body text); muted also on border, the background of a disabled primary button.
LIGHT = Colors(window="#f5f6f8", panel="#eceef2", base="#ffffff", alternate="#f3f5f8", text="#1f2328",
               muted="#4d5560", border="#d0d5dc", accent="#2559c7", accent_text="#ffffff", error="#b3261e",
               success="#176c31", warning="#845800", trained="#bbf7d0")
DARK = Colors(window="#1e1f22", panel="#18191c", base="#2b2d31", alternate="#313338", text="#e3e5e8",
              muted="#b4b9bf", border="#3f4147", accent="#7aa8ff", accent_text="#0b0c0e", error="#f2867d",
              success="#57c26c", warning="#e0b44c", trained="#1f5130")
TEXT_COLORS = ("muted", "accent", "error", "success", "warning")
BACKGROUNDS = ("window", "panel", "base", "alternate")


def contrast(foreground: str, background: str) -> float:
    """The WCAG contrast ratio of two #rrggbb colours, from 1 to 21."""
    def luminance(color: str) -> float:
        channels = [int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b
    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)

_current = LIGHT


def scheme() -> str:
    """'dark' or 'light': LLAMADESK_THEME if set, else the system's colour scheme."""
    chosen = os.environ.get(ENV_THEME, "").lower()
    if chosen in ("light", "dark"):
        return chosen
    hints = QGuiApplication.styleHints()
    return "dark" if hints is not None and hints.colorScheme() == Qt.ColorScheme.Dark else "light"


def colors() -> Colors:
    return _current


def apply(app: QApplication) -> None:
    """Style the app now, and again whenever the system switches between light and dark."""
    _apply(app)
    if app.findChild(_SchemeFollower) is None:
        _SchemeFollower(app)


class _SchemeFollower(QObject):
    """Restyles its parent, the app, when the system's colour scheme changes."""

    def __init__(self, app: QApplication):
        super().__init__(app)
        app.styleHints().colorSchemeChanged.connect(self._on_scheme_changed)

    def _on_scheme_changed(self, _scheme) -> None:
        _apply(self.parent())


def _apply(app: QApplication) -> None:
    global _current
    _current = DARK if scheme() == "dark" else LIGHT
    app.setStyle("Fusion")
    app.setPalette(_palette(_current))
    app.setStyleSheet(_style_sheet(_current))


def _palette(c: Colors) -> QPalette:
    p = QPalette()
    roles = {QPalette.ColorRole.Window: c.window, QPalette.ColorRole.WindowText: c.text,
             QPalette.ColorRole.Base: c.base, QPalette.ColorRole.AlternateBase: c.alternate,
             QPalette.ColorRole.ToolTipBase: c.base, QPalette.ColorRole.ToolTipText: c.text,
             QPalette.ColorRole.PlaceholderText: c.muted, QPalette.ColorRole.Text: c.text,
             QPalette.ColorRole.Button: c.base, QPalette.ColorRole.ButtonText: c.text,
             QPalette.ColorRole.BrightText: c.error, QPalette.ColorRole.Highlight: c.accent,
             QPalette.ColorRole.HighlightedText: c.accent_text, QPalette.ColorRole.Link: c.accent,
             QPalette.ColorRole.Light: c.base, QPalette.ColorRole.Midlight: c.alternate,
             QPalette.ColorRole.Mid: c.border, QPalette.ColorRole.Dark: c.border, QPalette.ColorRole.Shadow: c.panel}
    for role, color in roles.items():
        p.setColor(role, QColor(color))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor(c.muted))
    return p


def _style_sheet(c: Colors) -> str:
    return f"""
    #sidebar {{ background: {c.panel}; border: none; border-right: 1px solid {c.border}; }}
    #sidebar::item {{ border-radius: 6px; margin: 2px 6px; }}
    #sidebar::item:selected {{ background: {c.base}; color: {c.text}; }}
    #pageTitle {{ font-size: 17pt; font-weight: 600; }}
    #emptyTitle {{ font-size: 14pt; font-weight: 600; }}
    #pagePurpose, .muted, #muted {{ color: {c.muted}; }}
    #nextStep {{ background: {c.alternate}; border: 1px solid {c.border}; border-radius: 6px; padding: 4px 8px; }}
    QGroupBox {{ font-weight: 600; border: 1px solid {c.border}; border-radius: 6px; margin-top: 10px;
                 padding: 8px 6px 6px 6px; }}
    QGroupBox::title {{ subcontrol-origin: margin; left: 8px; padding: 0 4px; }}
    QPushButton {{ padding: 4px 12px; }}
    QPushButton#primary {{ background: {c.accent}; color: {c.accent_text}; border: 1px solid {c.accent};
                          border-radius: 4px; font-weight: 600; }}
    QPushButton#primary:disabled {{ background: {c.border}; color: {c.muted}; border-color: {c.border}; }}
    QLabel#error {{ color: {c.error}; }}
    QLabel#success {{ color: {c.success}; }}
    QLabel#warning {{ color: {c.warning}; }}
    """
