"""The main window: a sidebar of pages in the order of the user's path. It only composes pages and wires them."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QHBoxLayout, QListWidget, QMainWindow, QMessageBox, QSplitter, QStackedWidget, QWidget

from engine.light.run_folder import RunFolder
from gui.app_state import AppState
from gui.bootstrap import PAGES
from gui.engine_client import EngineClient
from gui.export_dialog import ExportDialog
from gui.pages.chat_page import ChatPage
from gui.pages.dataset_page import DatasetPage
from gui.pages.engine_page import EnginePage
from gui.pages.model_page import ModelPage
from gui.pages.runs_page import RunsPage
from gui.pages.train_page import TrainPage
from gui.widgets.dialogs import message_box

# QSettings keys, declared once with their defaults.
SETTINGS = {"window/geometry": None, "window/page": 0, "choices/model": "demo",
            "choices/dataset": ""}


class MainWindow(QMainWindow):
    def __init__(self, state: AppState | None = None, *, engine_command: list[str] | None = None):
        super().__init__()
        self.setWindowTitle("LlamaDesk")
        self.state = state or AppState()
        self.model_page = ModelPage(self.state)
        self.dataset_page = DatasetPage(self.state, engine_command=engine_command)
        self.train_page = TrainPage(self.state, engine_command=engine_command)
        self.chat_page = ChatPage(self.state, engine_command=engine_command)
        self.runs_page = RunsPage(self.state)
        self.engine_page = EnginePage(gpu_monitor=self.state.gpu)
        self.stack = QStackedWidget()
        for page in self._pages():
            self.stack.addWidget(page)
        self.sidebar = QListWidget()
        self.sidebar.addItems(PAGES)
        self.sidebar.setFixedWidth(self.sidebar.sizeHintForColumn(0) + 40)
        self.sidebar.currentRowChanged.connect(self.stack.setCurrentIndex)
        body = QWidget()
        layout = QHBoxLayout(body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.sidebar)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(body)
        for index, name in enumerate(PAGES):
            action = QAction(name, self, shortcut=QKeySequence(f"Ctrl+{index + 1}"))
            action.triggered.connect(lambda _=False, i=index: self.sidebar.setCurrentRow(i))
            self.addAction(action)

        self.runs_page.sig_open_run.connect(self._on_runs_open)
        self.runs_page.sig_resume_run.connect(self._on_runs_resume)
        self.runs_page.sig_chat_run.connect(self._on_runs_chat)
        self.runs_page.sig_export_run.connect(self.export_run)
        self.chat_page.sig_export_run.connect(lambda name: self.export_run(RunFolder.find(name).summary()))
        self._engine_command = engine_command
        self.leave_engine_running = False  # set when the user closes the window but keeps training
        self._restore()
        if self.train_page.attach_running():  # a run from an earlier session of the app is still training
            self.show_page("Train")
        elif self.engine_page.needs_setup():  # an installed app's first run: set up the engine first
            self.show_page("Engine")

    def _pages(self) -> tuple:
        return (self.model_page, self.dataset_page, self.train_page, self.chat_page, self.runs_page,
                self.engine_page)

    def show_page(self, name: str) -> None:
        self.sidebar.setCurrentRow(PAGES.index(name))

    def _on_runs_open(self, run) -> None:
        self.train_page.show_run(run)
        self.show_page("Train")

    def _on_runs_resume(self, run) -> None:
        self.train_page.resume_run(run)
        self.show_page("Train")

    def _on_runs_chat(self, run) -> None:
        self.chat_page.select_run(run.name)
        self.show_page("Chat")

    def export_run(self, run) -> ExportDialog:
        """The run's Export dialog (one per run; it stays open beside the window while the engine exports)."""
        for dialog in self.findChildren(ExportDialog):
            if dialog.run.folder.path == run.folder.path:
                dialog.raise_()
                dialog.activateWindow()
                return dialog
        dialog = ExportDialog(run, home=self.state.home, engine_command=self._engine_command, parent=self)
        dialog.setWindowFlag(Qt.WindowType.Window)
        dialog.show()
        return dialog

    def _restore(self) -> None:
        settings = QSettings()
        geometry = settings.value("window/geometry", SETTINGS["window/geometry"])
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1200, 780)
        for name, splitter in self._splitters().items():
            state = settings.value(f"splitters/{name}")
            if state is not None:
                splitter.restoreState(state)
        self.sidebar.setCurrentRow(int(settings.value("window/page", SETTINGS["window/page"])))
        self.state.set_model(str(settings.value("choices/model", SETTINGS["choices/model"])))
        dataset = str(settings.value("choices/dataset", SETTINGS["choices/dataset"]))
        if dataset and Path(dataset).exists():
            self.state.set_dataset(dataset)

    def _splitters(self) -> dict[str, QSplitter]:
        """Every splitter in the pages, by a stable name, so their sizes persist."""
        found = {}
        for page_name, page in zip(PAGES, self._pages()):
            for index, splitter in enumerate(page.findChildren(QSplitter)):
                found[f"{page_name}-{index}"] = splitter
        return found

    def closeEvent(self, event) -> None:
        session = self.train_page.controller.session
        if session is not None and session.is_active() and session.owns_engine():
            box = message_box(self, QMessageBox.Icon.Question, "Training is running",
                              "A training run is in progress. Keep it training in the background (open LlamaDesk "
                              "again to watch or stop it), stop it and save a checkpoint (you can resume it later), "
                              "or cancel it now (losing the steps since the last checkpoint)?")
            background = box.addButton("Keep training in the background", QMessageBox.ButtonRole.AcceptRole)
            stop = box.addButton("Stop and save", QMessageBox.ButtonRole.AcceptRole)
            cancel = box.addButton("Cancel training", QMessageBox.ButtonRole.DestructiveRole)
            box.addButton("Don't close", QMessageBox.ButtonRole.RejectRole)
            box.exec()
            if box.clickedButton() is background:
                self.leave_engine_running = True
            elif box.clickedButton() is stop:
                self.train_page.controller.stop()
                session.wait_for_exit(EngineClient.STOP_GRACE_MS)
            elif box.clickedButton() is cancel:
                session.kill()
                session.wait_for_exit(5000)
            else:
                event.ignore()
                return
        for dialog in self.findChildren(ExportDialog):
            if not dialog.close():  # an export is running and the user keeps it
                event.ignore()
                return
        self.chat_page.shutdown()
        self.engine_page.job.cancel()
        self.dataset_page.job.shutdown()  # a check still running must not report into a window being destroyed
        settings = QSettings()
        settings.setValue("window/geometry", self.saveGeometry())
        for name, splitter in self._splitters().items():
            settings.setValue(f"splitters/{name}", splitter.saveState())
        settings.setValue("window/page", self.sidebar.currentRow())
        settings.setValue("choices/model", self.state.config.model)
        settings.setValue("choices/dataset", self.state.config.dataset)
        event.accept()
