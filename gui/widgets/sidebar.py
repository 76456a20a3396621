"""The navigation sidebar: one row per page with its icon, its name, and where that step stands (a line of text and
a mark: done, to do, needs attention, in progress), so a new user sees where to start and what is done."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter
from PySide6.QtWidgets import (
    QListWidget,
    QListWidgetItem,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
)

from gui import icons, theme

STATE_ROLE = Qt.ItemDataRole.UserRole + 1  # (text, mark): mark is "done", "todo", "attention", "busy" or ""
ICON_ROLE = Qt.ItemDataRole.UserRole + 2
ROW_HEIGHT = 52


class Sidebar(QListWidget):
    def __init__(self, pages: tuple[str, ...], icon_names: dict[str, str]):
        super().__init__()
        self.setObjectName("sidebar")
        self.setAccessibleName("Pages")
        self.setItemDelegate(_RowDelegate(self))
        self.setFixedWidth(240)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QListWidget.Shape.NoFrame)
        for number, page in enumerate(pages, start=1):
            item = QListWidgetItem(page)
            item.setData(ICON_ROLE, icon_names[page])
            item.setData(STATE_ROLE, ("", ""))
            item.setToolTip(f"{page} (Ctrl+{number})")
            item.setSizeHint(QSize(200, ROW_HEIGHT))
            self.addItem(item)

    def set_state(self, page: str, text: str, mark: str = "") -> None:
        for row in range(self.count()):
            item = self.item(row)
            if item.text() == page:
                item.setData(STATE_ROLE, (text, mark))
                shortcut = f"Ctrl+{row + 1}"
                item.setToolTip(f"{page}: {text} ({shortcut})" if text else f"{page} ({shortcut})")  # the whole line
                item.setData(Qt.ItemDataRole.AccessibleTextRole, f"{page}: {text}" if text else page)

    def state(self, page: str) -> tuple[str, str]:
        return next(self.item(r).data(STATE_ROLE) for r in range(self.count()) if self.item(r).text() == page)


class _RowDelegate(QStyledItemDelegate):
    MARK_COLORS = {"done": "success", "attention": "warning", "busy": "accent", "todo": "muted"}
    MARK_ICONS = {"done": "done", "attention": "attention", "busy": "busy", "todo": "todo"}

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        colors = theme.colors()
        painter.save()
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        opt.widget.style().drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, opt, painter, opt.widget)
        rect = option.rect.adjusted(14, 0, -10, 0)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        glyph = icons.icon(index.data(ICON_ROLE), colors.accent if selected else colors.text)
        glyph.paint(painter, QRect(rect.left(), rect.center().y() - 11, 22, 22))
        text, mark = index.data(STATE_ROLE) or ("", "")
        left = rect.left() + 34
        title_font = QFont(option.font)
        title_font.setWeight(QFont.Weight.DemiBold)
        painter.setFont(title_font)
        painter.setPen(QColor(colors.text))
        title_rect = QRect(left, rect.top() + 7, rect.width() - 58, 20)
        painter.drawText(title_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, index.data())
        if text:
            small = QFont(option.font)
            small.setPointSizeF(max(option.font.pointSizeF() - 1.5, 7.0))
            painter.setFont(small)
            painter.setPen(QColor(colors.muted))
            line = QRect(left, rect.top() + 27, rect.width() - 58, 18)
            # In the middle: a file's extension and the start of its name stay readable.
            elided = painter.fontMetrics().elidedText(text, Qt.TextElideMode.ElideMiddle, line.width())
            painter.drawText(line, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, elided)
        if mark in self.MARK_ICONS:
            color = getattr(colors, self.MARK_COLORS[mark])
            icons.icon(self.MARK_ICONS[mark], color).paint(painter, QRect(rect.right() - 16, rect.center().y() - 8,
                                                                          16, 16))
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return QSize(200, ROW_HEIGHT)
