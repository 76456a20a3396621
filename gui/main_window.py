"""The main window: a sidebar of pages in the order of the user's path, each page under its header, and the guide
that says where each step stands and what to do next. It only composes pages and wires them."""

from __future__ import annotations

import functools
from pathlib import Path

import yaml
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QHBoxLayout,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from engine.light import config as run_config
from engine.light.run_folder import RunFolder, list_runs
from gui import guide, icons
from gui.app_state import AppState
from gui.engine_client import EngineClient
from gui.export_dialog import ExportDialog
from gui.pages import PAGES
from gui.pages.chat_page import ChatPage
from gui.pages.dataset_page import DatasetPage
from gui.pages.engine_page import EnginePage
from gui.pages.model_page import ModelPage
from gui.pages.runs_page import RunsPage
from gui.pages.train_page import TrainPage
from gui.widgets.dialogs import message_box
from gui.widgets.page_header import PageHeader
from gui.widgets.sidebar import Sidebar

# Each page's header: what it is for, in a sentence; and its sidebar icon.
PURPOSES = {
    "Model": "Choose the model to fine-tune: a catalog size, the offline demo model, a local folder or a Hugging "
             "Face id, with the GPU memory each needs.",
    "Dataset": "Load your training data, see every problem with its row, and each example exactly as the model will "
               "see it.",
    "Train": "Set up the fine-tune, check that it fits your GPU, and watch it learn.",
    "Chat": "Talk to your fine-tuned model, side by side with the base model.",
    "Runs": "Every fine-tune on this computer: open, resume, chat with, export or delete it.",
    "Engine": "The GPU and driver found, and the engine that trains on them.",
}
ICONS = {"Model": "model", "Dataset": "dataset", "Train": "train", "Chat": "chat", "Runs": "runs", "Engine": "engine"}

# QSettings keys, declared once with their defaults.
SETTINGS = {"window/geometry": None, "window/page": 0, "choices/model": "demo",
            "choices/dataset": "", "choices/config": "", "choices/source": "", "choices/source_config": ""}


class MainWindow(QMainWindow):
    def __init__(self, state: AppState | None = None, *, engine_command: list[str] | None = None):
        super().__init__()
        self.setWindowTitle("LlamaDesk")
        self.setWindowIcon(icons.app_icon())
        self.state = state or AppState()
        self.model_page = ModelPage(self.state)
        self.dataset_page = DatasetPage(self.state, engine_command=engine_command)
        self.train_page = TrainPage(self.state, engine_command=engine_command)
        self.chat_page = ChatPage(self.state, engine_command=engine_command)
        self.runs_page = RunsPage(self.state, engine_command=engine_command)
        self.engine_page = EnginePage(gpu_monitor=self.state.gpu)
        self.stack = QStackedWidget()
        self.headers: dict[str, PageHeader] = {}
        for name, page in zip(PAGES, self._pages()):
            self.headers[name] = PageHeader(name, PURPOSES[name])
            frame = QWidget()
            column = QVBoxLayout(frame)
            column.setContentsMargins(16, 12, 16, 8)
            column.addWidget(self.headers[name])
            column.addWidget(page, 1)
            self.stack.addWidget(frame)
        self.sidebar = Sidebar(PAGES, ICONS)
        self.sidebar.currentRowChanged.connect(self.stack.setCurrentIndex)
        self.sidebar.currentRowChanged.connect(self._on_page_changed)
        body = QWidget()
        layout = QHBoxLayout(body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.sidebar)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(body)
        page_keys = QActionGroup(self)
        page_keys.setExclusionPolicy(QActionGroup.ExclusionPolicy.None_)
        page_keys.triggered.connect(self._on_page_key)
        for index, name in enumerate(PAGES):
            action = QAction(name, page_keys, shortcut=QKeySequence(f"Ctrl+{index + 1}"))
            action.setData(index)
            self.addAction(action)
        # Ctrl+Q by name: the platform's StandardKey.Quit is empty on some Linux desktops (and Ctrl is Cmd on macOS).
        quit_action = QAction("Quit", self, shortcut=QKeySequence("Ctrl+Q"))
        quit_action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
        quit_action.triggered.connect(self.close)  # the same questions as closing the window while training
        self.addAction(quit_action)

        self.runs_page.sig_open_run.connect(self._on_runs_open)
        self.runs_page.sig_resume_run.connect(self._on_runs_resume)
        self.runs_page.sig_chat_run.connect(self._on_runs_chat)
        self.runs_page.sig_export_run.connect(self.export_run)
        self.runs_page.sig_show_page.connect(self.show_page)
        self.chat_page.sig_export_run.connect(self._on_chat_export)
        self._engine_command = engine_command
        self._chatted = False
        self._guide_timer = QTimer(self, singleShot=True, interval=150)  # many changes arrive together: one update
        self._guide_timer.timeout.connect(self.update_guide)
        for signal in (self.state.sig_model_changed, self.state.sig_dataset_changed, self.state.sig_runs_changed,
                       self.dataset_page.sig_checked, self.dataset_page.sig_check_started,
                       self.train_page.controller.sig_running_changed,
                       self.train_page.controller.sig_progress):
            signal.connect(self._update_guide_soon)
        self.chat_page.controller.sig_loaded.connect(self._on_chat_loaded)
        self.leave_engine_running = False  # set when the user closes the window but keeps training
        self._restore()
        if self.train_page.attach_running():  # a run from an earlier session of the app is still training
            self.show_page("Train")
        elif self.engine_page.needs_setup():  # an installed app's first run: set up the engine first
            self.show_page("Engine")
        self.update_guide()

    # ---- the guide -----------------------------------------------------------------------------------------------
    def facts(self) -> guide.Facts:
        runs = list_runs()
        controller = self.train_page.controller
        return guide.Facts(
            engine_needs_setup=self.engine_page.needs_setup(), model=self.state.config.model,
            **self.dataset_page.guide_facts(),
            training=(controller.last_progress or "starting") if controller.is_busy() else "",
            finished_runs=tuple(r.name for r in runs if r.status == "finished" and r.has_adapter),
            runs=len(runs), chatted=self._chatted)

    def update_guide(self) -> None:
        facts = self.facts()
        for name, step in guide.steps(facts).items():
            self.sidebar.set_state(name, step.text, step.mark)
        upcoming = guide.next_step(facts)
        current = PAGES[max(self.sidebar.currentRow(), 0)]
        for name, header in self.headers.items():
            if upcoming is None or name != current:
                header.set_next("")
            elif upcoming.page == current:
                header.set_next(upcoming.text, upcoming.button, self._actions().get(upcoming.action))
            else:
                header.set_next(f"Next: {upcoming.text}", f"Go to {upcoming.page}",
                                functools.partial(self.show_page, upcoming.page))

    def _update_guide_soon(self, *_) -> None:
        self._guide_timer.start()

    def _actions(self) -> dict:
        """What the next step's button does on its own page."""
        return {"use_sample": self.dataset_page.open_sample, "check": self._check_dataset,
                "start": self.train_page.start, "chat": self._chat_with_latest}

    def _check_dataset(self) -> None:
        self.dataset_page.open_path(self.state.config.dataset)

    def _chat_with_latest(self) -> None:
        finished = self.facts().finished_runs
        if finished and self.chat_page.select_run(finished[0]):
            self.chat_page.load()

    def _on_chat_loaded(self, kind: str, name: str) -> None:
        self._chatted = self._chatted or kind == "run"
        self._guide_timer.start()

    def _pages(self) -> tuple:
        return (self.model_page, self.dataset_page, self.train_page, self.chat_page, self.runs_page,
                self.engine_page)

    def current_page(self) -> QWidget:
        return self._pages()[self.stack.currentIndex()]

    def show_page(self, name: str) -> None:
        self.sidebar.setCurrentRow(PAGES.index(name))

    def _on_page_changed(self, _row: int) -> None:
        self.update_guide()

    def _on_page_key(self, action: QAction) -> None:
        self.sidebar.setCurrentRow(action.data())

    def _on_runs_open(self, run) -> None:
        self.train_page.show_run(run)
        self.show_page("Train")

    def _on_runs_resume(self, run) -> None:
        self.train_page.resume_run(run)
        self.show_page("Train")

    def _on_runs_chat(self, run) -> None:
        self.chat_page.select_run(run.name)
        self.show_page("Chat")

    def _on_chat_export(self, name: str) -> None:
        self.export_run(RunFolder.find(name).summary())

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
        self._restore_choices(settings)

    def _restore_choices(self, settings: QSettings) -> None:
        """The last session's model, dataset and training settings, as they were, with where they came from; the
        Dataset page then opens and checks that dataset, so page, sidebar and Train page name the same file."""
        saved = {key: str(settings.value(key, SETTINGS[key]) or "") for key in SETTINGS if key.startswith("choices/")}
        config = source_config = None
        try:
            if saved["choices/config"]:
                config = run_config.from_mapping(yaml.safe_load(saved["choices/config"]), require_dataset=False)
            if saved["choices/source_config"]:
                source_config = run_config.from_mapping(yaml.safe_load(saved["choices/source_config"]),
                                                        require_dataset=False)
        except (run_config.ConfigError, yaml.YAMLError, TypeError, AttributeError):
            config = None  # settings from another version of the app: start from the defaults, as a first start does
        if config is None:
            config = self.state.config.with_values({"model": saved["choices/model"] or "demo",
                                                    "dataset": saved["choices/dataset"]})
        if config.dataset and not Path(config.dataset).exists():
            config = config.with_values({"dataset": ""})  # moved or deleted since: nothing to open
        if saved["choices/config"]:
            self.state.set_config(config, source=saved["choices/source"] or "the defaults",
                                  source_config=source_config, restored=True)
        else:
            self.state.set_config(config)

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
        self._stop_workers()
        settings = QSettings()
        settings.setValue("window/geometry", self.saveGeometry())
        for name, splitter in self._splitters().items():
            settings.setValue(f"splitters/{name}", splitter.saveState())
        settings.setValue("window/page", self.sidebar.currentRow())
        settings.setValue("choices/model", self.state.config.model)
        settings.setValue("choices/dataset", self.state.config.dataset)
        settings.setValue("choices/config", self.state.config.to_yaml())
        settings.setValue("choices/source", self.state.settings_source)
        settings.setValue("choices/source_config", self.state.source_config().to_yaml())
        event.accept()

    def _stop_workers(self) -> None:
        """End every process and thread the pages run, and wait for them: nothing may report into a window being
        destroyed, and Qt aborts on a QThread destroyed while it runs."""
        self.chat_page.controller.shutdown_now()  # its engine: asked to exit, and waited for (briefly)
        self.chat_page.shutdown()  # and its API reply's thread
        self.runs_page.shutdown()  # the batch comparison's thread
        self.engine_page.job.cancel()
        self.dataset_page.job.shutdown()
        self.train_page.time_job.shutdown()
        self.state.gpu.stop()
