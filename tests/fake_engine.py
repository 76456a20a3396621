"""A scripted stand-in for the engine, for GUI tests: prints protocol lines, obeys stop/pause/chat/cancel.

Usage (the GUI's EngineClient runs it through LLAMADESK_ENGINE or its ``command`` argument):
    python tests/fake_engine.py [--steps N] [--delay S] [--crash-at N] [--fail] [--noise] [--load-delay S]
                                [--compare N] [--compare-delay S] train|chat|data ...
The run folder it writes (with LLAMADESK_HOME) looks like the real engine's, so run views can read it. A chat engine
loads an "export" (load_export) as the real one reports it: a missing file or one that does not begin with GGUF is an
error of kind "export"; the quantization is read from the file name (``…-q4_k_m.gguf``). With ``--compare N`` a
training run ends by comparing with the base model over N prompts (``--compare-delay`` seconds each), reporting each,
and a skip_comparison (or stop) ends it before the next prompt, as the engine does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.light import protocol  # noqa: E402

out_lock = threading.Lock()
events_file = None


def emit(msg) -> None:
    line = protocol.encode(msg)
    with out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        if events_file is not None:
            events_file.write(line + "\n")
            events_file.flush()


def main() -> int:
    global events_file
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--crash-at", type=int, default=0)
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--noise", action="store_true", help="print non-protocol lines on stdout too")
    parser.add_argument("--load-delay", type=float, default=0.0, help="seconds a chat engine takes to load an export")
    parser.add_argument("--compare", type=int, default=0, help="prompts of the comparison with the base model")
    parser.add_argument("--compare-delay", type=float, default=0.05, help="seconds each compared prompt takes")
    parser.add_argument("command")
    args, rest = parser.parse_known_args()
    commands: list = []
    ready = threading.Event()

    def read_stdin():
        reader = protocol.Reader()
        for data in iter(lambda: os.read(0, 65536), b""):
            for msg in reader.feed(data):
                commands.append(msg)
                ready.set()
        commands.append(None)
        ready.set()

    threading.Thread(target=read_stdin, daemon=True).start()
    emit(protocol.Hello(protocol.PROTOCOL_VERSION, "fake", {"kind": "cpu", "name": "fake"}, args.command))
    if args.noise:
        print("some library chatter that is not JSON", flush=True)
    if args.command == "chat":
        return chat(commands, ready, args.load_delay)
    if args.command == "train":
        home = Path(os.environ.get("LLAMADESK_HOME", "."))
        resumed = rest[rest.index("--resume") + 1] if "--resume" in rest else None
        run_dir = Path(resumed) if resumed else home / "runs" / f"fake-{int(time.time() * 1000)}"
        if not resumed:
            run_dir.mkdir(parents=True)
            (run_dir / "config.yaml").write_text("model: fake\ndataset: fake.jsonl\n")
            (run_dir / "engine.log").write_text("INFO engine.train: loading the fake model\n")
        events_file = (run_dir / "events.jsonl").open("a")
        emit(protocol.RunStarted(str(run_dir), resumed=bool(resumed)))
        emit(protocol.Log("info", "arguments: " + json.dumps(sys.argv[1:])))
        return train(args, commands, run_dir)
    return 2


def train(args, commands, run_dir: Path) -> int:
    emit(protocol.State("loading_model", "fake"))
    emit(protocol.State("training", f"{args.steps} steps"))
    metrics_file = run_dir / "metrics.jsonl"
    done = [json.loads(line)["step"] for line in metrics_file.read_text().splitlines()] if metrics_file.exists() else []
    metrics = metrics_file.open("a")
    step = max(done, default=0)  # a resumed run goes on from its last step
    while step < args.steps:
        if args.crash_at and step + 1 == args.crash_at:
            sys.stderr.write("Traceback: simulated crash\n")
            sys.stderr.flush()
            os._exit(137)
        pending = [c for c in commands if c is not None]
        commands.clear()
        if any(isinstance(c, protocol.Stop) for c in pending):
            emit(protocol.CheckpointSaved(step, str(run_dir / "checkpoints" / f"step-{step}")))
            emit(protocol.State("stopped", f"checkpoint at step {step}"))
            return 0
        if any(isinstance(c, protocol.Pause) for c in pending):  # as the engine: checkpoint, then exit
            emit(protocol.CheckpointSaved(step, str(run_dir / "checkpoints" / f"step-{step}")))
            emit(protocol.State("paused", f"at step {step}; the GPU is free, and resuming continues from this step"))
            return 0
        step += 1
        loss = 3.0 / step
        emit(protocol.Progress(step, args.steps, step / args.steps, loss, 1e-3, 0.5, 100.0, step * args.delay,
                               (args.steps - step) * args.delay))
        metrics.write(json.dumps({"step": step, "loss": loss}) + "\n")
        metrics.flush()
        time.sleep(args.delay)
    if args.fail:
        emit(protocol.Error("out_of_memory", "the GPU ran out of memory at step 3", "to fit: micro-batch 2; then "
                            "resume", retry={"train.micro_batch": 2, "train.grad_accum": 8}))
        emit(protocol.State("failed"))
        return 1
    emit(protocol.Eval(args.steps, 1.0))
    detail = compare(args, commands, run_dir) if args.compare else ""
    emit(protocol.Finished(str(run_dir), str(run_dir / "adapter"), {"train_loss": 1.5, "last_loss": 3.0 / args.steps}))
    emit(protocol.State("finished", detail))
    return 0


def compare(args, commands, run_dir: Path) -> str:
    """The comparison with the base model, prompt by prompt; the finished state's detail (empty unless skipped)."""
    emit(protocol.State("comparing", "the base model and the fine-tune on the validation split"))
    emit(protocol.CompareProgress("loss", 0, 2))
    emit(protocol.CompareProgress("loss", 1, 2, elapsed_s=args.compare_delay))
    began = time.monotonic()
    for done in range(args.compare + 1):
        elapsed = time.monotonic() - began
        eta = elapsed / done * (args.compare - done) if done else None
        emit(protocol.CompareProgress("answers", done, args.compare, eta, elapsed))
        if done == args.compare:
            break
        if any(isinstance(c, (protocol.SkipComparison, protocol.Stop)) for c in commands):
            emit(protocol.Log("info", f"skip_comparison received after {done} answers"))
            text = (f"the comparison with the base model was skipped; compute it later with "
                    f"'llamadesk-engine eval {run_dir.name}'")
            emit(protocol.Log("info", text))
            return text
        time.sleep(args.compare_delay)
    return ""


def chat(commands, ready, load_delay: float) -> int:
    emit(protocol.State("ready", "fake"))
    export = None
    while True:
        ready.wait()
        ready.clear()
        while commands:
            msg = commands.pop(0)
            if msg is None or isinstance(msg, protocol.Shutdown):
                return 0
            if isinstance(msg, protocol.LoadExport):
                export = load_export(Path(msg.path), load_delay)
            elif isinstance(msg, protocol.UnloadExport):
                export = None
            elif isinstance(msg, protocol.Chat) and msg.adapter == "export" and export is None:
                emit(protocol.Error("chat", "no exported model is loaded in this chat session"))
                emit(protocol.ChatDone(msg.id, "error"))
            elif isinstance(msg, protocol.Chat):
                last = msg.messages[-1]["content"] if msg.messages else ""
                words = f"[{msg.adapter}] You said: {last}".split(" ")
                emit(protocol.State("generating", msg.id))
                reason = "end"
                for i, word in enumerate(words):
                    if any(isinstance(c, protocol.Cancel) and c.id == msg.id for c in commands):
                        reason = "cancelled"
                        break
                    emit(protocol.ChatToken(msg.id, word if i == 0 else " " + word))
                    time.sleep(0.01)
                emit(protocol.ChatDone(msg.id, reason, len(words)))
                emit(protocol.State("ready"))


def load_export(path: Path, delay: float) -> protocol.ExportLoaded | None:
    emit(protocol.State("loading_export", str(path)))
    time.sleep(delay)
    loaded = None
    if not path.is_file():
        emit(protocol.Error("export", f"there is no file at {path}", "choose an exported .gguf file"))
    elif not _begins_with_gguf(path):
        emit(protocol.Error("export", f"{path.name} is not a GGUF file", "choose the .gguf file of an export"))
    else:
        quantization = path.stem.rsplit("-", 1)[-1].upper()
        loaded = protocol.ExportLoaded(str(path), path.name, quantization, f"{quantization}, run by llama.cpp")
        emit(loaded)
    emit(protocol.State("ready"))
    return loaded


def _begins_with_gguf(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == b"GGUF"


if __name__ == "__main__":
    raise SystemExit(main())
