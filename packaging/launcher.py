"""The frozen app's entry point. ``LlamaDesk --engine …`` runs the bundled engine (offline edition); anything else
opens the window (or runs ``--self-test`` / ``--setup-engine``)."""

import multiprocessing
import sys


def main() -> int:
    multiprocessing.freeze_support()  # torch's data loader workers start this executable again
    if len(sys.argv) > 1 and sys.argv[1] == "--engine":
        from engine.cli import main as engine_main

        return engine_main(sys.argv[2:])
    from gui.app import main as app_main

    return app_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
