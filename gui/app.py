"""``llamadesk``: the desktop app's entry point."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from pathlib import Path

from PySide6.QtCore import QSettings

from engine.light import paths
from gui.bootstrap import application, build_window
from gui.pages import PAGES


def main(argv: list[str] | None = None) -> int:
    multiprocessing.freeze_support()
    parser = argparse.ArgumentParser(prog="llamadesk", description="LlamaDesk: fine-tune LLaMA models on your GPU.")
    parser.add_argument("--home", help=f"LlamaDesk's data folder (default: ${paths.ENV_HOME} or the per-user folder)")
    parser.add_argument("--page", choices=PAGES, help="page to open on")
    parser.add_argument("--demo", action="store_true",
                        help="open on the offline demo model and the bundled sample dataset, ready to train")
    parser.add_argument("--self-test", nargs="?", const="", metavar="REPORT",
                        help="check this installation without a screen: start the engine, train two QLoRA steps of "
                        "the demo model, print a JSON report (and write it to REPORT)")
    parser.add_argument("--setup-engine", metavar="BACKEND", nargs="?", const="auto",
                        help="install the engine environment without the window (installed app): auto, cpu, or a "
                        "CUDA build such as cu128")
    parser.add_argument("--wheels", metavar="DIR", help="with --setup-engine: a folder of wheels to prefer")
    parser.add_argument("--torch-wheels", metavar="DIR", help="with --setup-engine: take torch from this folder")
    parser.add_argument("--offline", action="store_true", help="with --setup-engine: use --wheels only")
    args = parser.parse_args(argv)
    home = str(paths.set_home(args.home)) if args.home else None
    if getattr(sys, "frozen", False):
        os.environ.setdefault("HF_HOME", str(paths.home() / "huggingface"))  # hub caches in the app's data folder
    if args.setup_engine:
        return _setup_engine(args)
    if args.self_test is not None:
        from gui import self_test

        return self_test.run(Path(args.self_test) if args.self_test else None)
    app = application()
    window = build_window(home)
    if args.demo:
        from engine.light import demo_settings

        config = demo_settings.demo_config()  # the settings that teach the demo model the sample's facts in minutes
        window.state.set_config(config, source="the demo preset (llamadesk --demo)")
        window.show_page("Train")
    if args.page:
        window.show_page(args.page)
    window.show()
    return leave(window, app.exec())


def leave(window, code: int) -> int:
    """The app's last step. Destroying a QProcess kills its process, so when the user chose to keep training in the
    background the app exits without running destructors."""
    if window.leave_engine_running:
        QSettings().sync()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _setup_engine(args) -> int:
    from gui import engine_env

    detection = engine_env.detect()
    choice = engine_env.choose(detection)
    backend = choice.backend if args.setup_engine == "auto" else engine_env.ALL_BACKENDS.get(args.setup_engine)
    if backend is None:
        print(f"error: unknown backend {args.setup_engine!r}; one of: auto, {', '.join(engine_env.ALL_BACKENDS)}",
              file=sys.stderr)
        return 2
    print(f"{choice.why}." + (f" ({choice.action})" if choice.action else ""))
    print(f"Installing the engine for: {backend.label}")
    sources = engine_env.Sources.bundled()
    sources.wheels = Path(args.wheels) if args.wheels else sources.wheels
    sources.torch_wheels = Path(args.torch_wheels) if args.torch_wheels else None
    sources.offline = args.offline
    env = engine_env.EngineEnv()
    try:
        record = engine_env.install(env, backend, sources, detection)
    except (engine_env.SetupFailed, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    result = record["selftest"]
    print("Engine ready." if result.get("ok") else "The engine's self-test failed:\n  " +
          "\n  ".join(result.get("problems", [])))
    return 0 if result.get("ok") else 1
