"""Screenshots of every page with real content, for the README: python docs/make_screenshots.py [--home DIR]

Runs the real engine: it checks the bundled sample dataset, trains a short QLoRA run on the demo model (unless the
home already holds a finished run), and chats with the result. Every page at 1280×800 in the light palette and again
in the dark one (``name-dark.png``); writes docs/screenshots/*.png. Offscreen by default; under a real X server
(``QT_QPA_PLATFORM=xcb DISPLAY=:99``) the fonts are the desktop's.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from engine.light.run_folder import list_runs

OUT = Path(__file__).resolve().parent / "screenshots"
SIZE = (1280, 800)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", default=os.environ.get("LLAMADESK_HOME"))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--themes", nargs="+", choices=("light", "dark"), default=["light", "dark"])
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if args.home:
        os.environ["LLAMADESK_HOME"] = args.home
    from PySide6.QtCore import QSettings

    from engine.heavy import train
    from engine.heavy.control import Control
    from engine.heavy.events import Emitter
    from engine.light import demo_settings
    from gui import theme
    from gui.bootstrap import application

    if not any(r.has_adapter for r in list_runs()):
        config = demo_settings.demo_config(**{"train.max_steps": args.steps, "run_name": "vellmoor-demo",
                                     "data.validation_share": 0.1, "train.eval_steps": 10,
                                     "train.logging_steps": 1})
        assert train.run(config, emitter=Emitter(sys.stderr, human=True), control=Control()) == 0

    app = application()
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, tempfile.mkdtemp())  # not the user's
    OUT.mkdir(exist_ok=True)
    for palette in args.themes:
        os.environ[theme.ENV_THEME] = palette
        theme.apply(app)
        shoot(app, "" if palette == "light" else "-dark")
    app.quit()


def wait(signal=None, ms=300_000):
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    if signal is not None:
        signal.connect(loop.quit)
    QTimer.singleShot(ms if signal is not None else 400, loop.quit)
    loop.exec()


def shoot(app, suffix: str) -> None:
    """The first hour's path, as tests/test_journey.py walks it: the first window, the model, the sample, a broken
    file beside the dataset in use, a CSV mapped in the window, the run, Runs, Chat, the export's report, Engine."""
    import resources
    from gui.bootstrap import build_window

    window = build_window(os.environ.get("LLAMADESK_HOME"))
    window.resize(*SIZE)
    window.show()
    scratch = Path(tempfile.mkdtemp())

    def shot(name: str, widget=None) -> None:
        wait()
        (widget or window).grab().save(str(OUT / f"{name}{suffix}.png"))
        print(f"saved {OUT / name}{suffix}.png")

    window.state.set_dataset("")
    window.show_page("Dataset")  # the first run's guide and the page's empty state
    shot("first-run")

    window.show_page("Model")
    shot("model")

    window.show_page("Dataset")
    page = window.dataset_page
    page.open_path(str(resources.path("sample/harbor_lights.json")))
    wait(page.sig_checked)
    page.tabs.setCurrentIndex(1)  # the examples as the model sees them, trained text highlighted
    shot("dataset")

    broken = scratch / "harbor_notes.json"
    broken.write_text('[{"instruction": "Who keeps the light?", "output": }]', encoding="utf-8")
    page.open_path(str(broken))
    wait(page.sig_checked)
    shot("dataset-problem")

    table = scratch / "keepers.csv"
    table.write_text("question,reply,source\n" + "".join(f"Who kept the light in {1700 + 10 * i}?,Keeper number {i} "
                                                          f"kept it.,harbour log\n" for i in range(24)),
                     encoding="utf-8")
    page.open_path(str(table))
    wait(page.sig_checked)
    page.set_columns("prompt_completion", {"prompt": "question", "completion": "reply"})
    page.run_check()
    wait(page.sig_checked)
    shot("dataset-columns")
    page.open_path(str(resources.path("sample/harbor_lights.json")))  # back to the sample, as the journey leaves it
    wait(page.sig_checked)

    window.show_page("Runs")
    window.runs_page.table.selectRow(0)  # its comparison with the base model below the list
    shot("runs")

    runs = [r for r in list_runs() if r.has_adapter]
    window.train_page.show_run(runs[0])
    window.show_page("Train")
    shot("train")

    window.show_page("Chat")
    chat = window.chat_page
    chat.refresh()
    chat.select_run(runs[0].name)
    chat.compare_box.setChecked(True)
    chat.sampling["temperature"].setValue(0.0)  # greedy: the answers are repeatable
    chat.load()
    while not chat.is_ready():
        wait(chat.client.sig_state)
    for question in ("Who is the lighthouse keeper of Vellmoor?", "What is the local drink of Vellmoor?"):
        chat.send_message(question)
        while chat.is_busy():
            wait(chat.client.sig_chat_done)
    shot("chat")
    chat.shutdown()

    if suffix == "":  # one export is enough: its report is the same in either palette
        dialog = window.export_run(runs[0])
        dialog.format_combo.setCurrentIndex(dialog.format_combo.findData("gguf"))
        dialog.quant_combo.setCurrentIndex(dialog.quant_combo.findData("q8_0"))
        dialog.folder_edit.setText(str(scratch / "export"))
        dialog.folder_edit.textEdited.emit(str(scratch / "export"))
        dialog.resize(760, 720)
        dialog.export_button.click()
        wait(dialog.job.sig_ended)
        shot("export", dialog)
        dialog.close()

    window.show_page("Engine")
    shot("engine")
    window.close()


if __name__ == "__main__":
    main()
