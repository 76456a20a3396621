"""``llamadesk``: the desktop app's entry point.

For now the window shows the model catalog read from the engine's light catalog module; the pages for data,
training and chat build on the engine's command line as it grows.
"""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from engine.models.catalog import human_bytes, human_count, load_catalog

COLUMNS = ("Model", "Parameters", "Context", "License", "Gated", "Download")


def build_window() -> QMainWindow:
    QApplication.instance() or QApplication(sys.argv)
    window = QMainWindow()
    window.setWindowTitle("LlamaDesk")
    body = QWidget()
    layout = QVBoxLayout(body)
    intro = QLabel("Pick a LLaMA model to fine-tune. The demo model (SmolLM2-135M-Instruct) works offline.")
    intro.setWordWrap(True)
    layout.addWidget(intro)
    specs = load_catalog()
    table = QTableWidget(len(specs), len(COLUMNS))
    table.setHorizontalHeaderLabels(COLUMNS)
    for row, spec in enumerate(specs):
        cells = (spec.name, human_count(spec.param_count), f"{spec.max_position_embeddings:,}", spec.license,
                 "yes" if spec.gated else "no", human_bytes(spec.download_bytes))
        for column, text in enumerate(cells):
            table.setItem(row, column, QTableWidgetItem(text))
    table.resizeColumnsToContents()
    layout.addWidget(table)
    window.setCentralWidget(body)
    window.resize(820, 520)
    return window


def main() -> int:
    app = QApplication.instance() or QApplication(sys.argv)
    window = build_window()
    window.show()
    return app.exec()
