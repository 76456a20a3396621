"""The Chat page's export column: an exported GGUF file answering beside the fine-tune, run by llama.cpp inside the
chat engine, so the user sees what LM Studio and Ollama users will see.

This module finds the exports on disk (each export folder holds a ``*.gguf`` and its ``verification.json``), offers
them and any other .gguf file in a picker, and keeps the column's title and placeholder; ``ChatController`` asks the
engine to load the file (the window never opens it, however large) and sends the column's requests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QComboBox, QFileDialog, QPushButton, QWidget

from engine.light import export_options, paths
from gui.chat_controller import ChatController
from gui.widgets.chat_transcript import ChatPane

NO_EXPORT = ""  # the picker's item data for "no export column"


@dataclass(frozen=True)
class ExportedGguf:
    path: Path
    run: str
    passed: bool  # it passed the export's verification against the fine-tune

    def label(self) -> str:
        return self.path.name + ("" if self.passed else " (did not pass verification)")


def exports_folder() -> Path:
    return paths.home() / "exports"


def exported_ggufs(folder: Path | None = None) -> list[ExportedGguf]:
    """The GGUF files of the finished exports in ``folder`` (default: the home's exports), newest first. Exports
    being written, and earlier ones set aside while a new one took their name, are left out."""
    folder = exports_folder() if folder is None else folder
    found = []
    for export in (folder.iterdir() if folder.is_dir() else ()):
        gguf = _gguf_of(export)
        if gguf is not None:
            found.append((gguf.path.stat().st_mtime, gguf))
    return [gguf for _, gguf in sorted(found, key=lambda pair: pair[0], reverse=True)]


def _gguf_of(export: Path) -> ExportedGguf | None:
    if export.name.endswith(".partial") or ".old-" in export.name:
        return None
    report = export_options.read_report(export)
    name = ((report or {}).get("gguf") or {}).get("file")
    if not isinstance(name, str) or Path(name).name != name or not (export / name).is_file():
        return None
    return ExportedGguf(export / name, report["run"], report["passed"])


class ExportColumn(QObject):
    """The export pane, its picker (``combo``: no export, or one of the exports found; filled by ``refresh``) and
    ``browse_button`` for any other file. ``run_name()`` names the run the page chats with ("" for a base model),
    whose exports come first."""

    def __init__(self, controller: ChatController, parent: QWidget, run_name: Callable[[], str]):
        super().__init__(parent)
        self._controller = controller
        self._run_name = run_name
        self.pane = ChatPane("Export", who="Export")
        self.pane.transcript.set_assistant_name("Export")
        self.pane.hide()
        self.combo = QComboBox()
        self.combo.setAccessibleName("Exported model")
        self.combo.setToolTip("An exported GGUF file to answer beside the fine-tune, run by llama.cpp as LM Studio "
                              "and Ollama run it, with the sampling settings set here.")
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(16)
        self.combo.activated.connect(self._on_chosen)  # the user's choice only, not a refresh
        self.browse_button = QPushButton("Other GGUF file…")
        self.browse_button.setToolTip("Choose any .gguf file to answer beside the fine-tune")
        self.browse_button.clicked.connect(self.choose_file)
        controller.sig_export_changed.connect(self._on_export_changed)

    def is_shown(self) -> bool:
        """Whether the export pane takes part in the conversation: an export is loaded or loading."""
        return self._controller.export is not None or bool(self._controller.export_loading)

    def answers(self) -> bool:
        return self._controller.export is not None

    # ---- the picker -----------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """List the exports on disk, the chosen run's first; the current choice stays chosen."""
        current = self._current_path()
        run = self._run_name()
        exports = sorted(exported_ggufs(), key=lambda gguf: gguf.run != run)  # stable: newest first within each
        self.combo.clear()
        self.combo.addItem("No export", NO_EXPORT)
        for gguf in exports:
            self.combo.addItem(gguf.label(), str(gguf.path))
        if current and self.combo.findData(current) < 0:
            self.combo.addItem(Path(current).name, current)  # a file chosen elsewhere
        self.combo.setCurrentIndex(max(self.combo.findData(current), 0))

    def load(self, path: str) -> bool:
        """Have the engine load ``path`` for the export pane (the picker follows when it starts); False when it
        cannot go now (no model loaded, or a reply under way)."""
        return self._controller.load_export(path)

    def choose_file(self) -> None:
        """A file dialog that starts among the chosen run's exports."""
        path, _ = QFileDialog.getOpenFileName(self.parent(), "Choose an exported GGUF file", str(self._start_folder()),
                                              "GGUF files (*.gguf);;All files (*)")
        if path:
            self.load(path)

    def _start_folder(self) -> Path:
        run = self._run_name()
        own = [gguf for gguf in exported_ggufs() if gguf.run == run]
        if own:
            return own[0].path.parent
        return exports_folder() if exports_folder().is_dir() else paths.home()

    def _current_path(self) -> str:
        loaded = self._controller.export
        return loaded.path if loaded is not None else self._controller.export_loading

    def _on_chosen(self, index: int) -> None:
        path = self.combo.itemData(index) or NO_EXPORT
        if path == NO_EXPORT:
            self._controller.unload_export()
        elif path != self._current_path():
            self.load(path)
        self.refresh()  # the picker shows what is loaded, also when the choice could not be made now

    # ---- the pane -------------------------------------------------------------------------------------------------
    def update_controls(self, free: bool) -> None:
        """``free``: no reply is under way in any pane, so the export may change (once a model is loaded)."""
        enabled = free and self._controller.can_load_export()
        self.combo.setEnabled(enabled)
        self.browse_button.setEnabled(enabled)

    def set_empty_text(self, ready_text: str) -> None:
        loaded, loading = self._controller.export, self._controller.export_loading
        if loading:
            self.pane.transcript.set_empty_text(f"Loading {Path(loading).name} in llama.cpp…")
        elif loaded is not None:
            self.pane.transcript.set_empty_text(
                f"{ready_text}\n{loaded.name} ({loaded.detail}) answers here as it will in LM Studio and Ollama.")

    def _on_export_changed(self) -> None:
        """Another file (or none): its conversation starts afresh, under its name."""
        loaded, loading = self._controller.export, self._controller.export_loading
        if loaded is not None:
            quantization = f" ({loaded.quantization})" if loaded.quantization else ""  # first: long names are cut
            self.pane.set_title(f"Export{quantization}: {loaded.name}")
        elif loading:
            self.pane.transcript.clear_conversation()
            self.pane.set_title(f"Export: {Path(loading).name} (loading…)")
        self.refresh()
