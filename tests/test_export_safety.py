"""An export never deletes a folder it did not write: a folder of someone else's files is refused and left byte for
byte; an earlier export is replaced only by a swap once the new one is verified, and comes back after a kill between
the swap's renames; an export that fails its verification is kept as ``<folder>.failed`` beside the earlier one.

A tiny random-weight LLaMA is fine-tuned once per module; the adapter format (a copy, no model loaded) makes most
exports here take a second.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.heavy import train
from engine.heavy.control import Control
from engine.heavy.events import Emitter
from engine.heavy.export import job, merge, publish
from engine.light import config as run_config
from engine.light import export_report, protocol
from engine.light.errors import UserError
from engine.light.export_options import REPORT, ExportOptions, earlier_export, holds_our_export
from engine.light.run_folder import RunFolder
from tests.engine_driver import Collected

# The engine, with the second rename of a swap held: the earlier export is already aside, the new one not yet in its
# place. The marker file says the engine got there; the test then kills it.
HELD_BETWEEN_THE_RENAMES = """
import os, sys, time
from pathlib import Path
from engine.heavy.export import publish

def held(build, final):
    Path(os.environ["LLAMADESK_TEST_HOLD_MARKER"]).write_text(f"{build} -> {final}")
    time.sleep(3600)  # killed here

publish._bring_in = held
from engine.cli import main
sys.exit(main(sys.argv[1:]))
"""

# The engine, with the merged model's weights damaged after they are saved and before they are verified.
DAMAGED_MERGED_WEIGHTS = """
import sys
from engine.heavy.export import merge
from tests.test_export_safety import save_damaged

merge.save = save_damaged(merge.save)
from engine.cli import main
sys.exit(main(sys.argv[1:]))
"""


def save_damaged(saved):
    """merge.save, then the first embedding rows swapped, as a writer that mixed up its tensors would leave them:
    the merged model no longer answers like the fine-tune."""
    def save(model, adapter_dir, out, card, **options):
        from safetensors.torch import load_file, save_file

        saved(model, adapter_dir, out, card, **options)
        weights = load_file(out / "model.safetensors")
        weights["model.embed_tokens.weight"] = weights["model.embed_tokens.weight"].roll(1, dims=0).contiguous()
        save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    return save


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, decisive_tiny_model, small_dataset) -> RunFolder:
    home = tmp_path_factory.mktemp("safety-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LLAMADESK_HOME", str(home))
        config = run_config.from_mapping({
            "model": str(decisive_tiny_model), "dataset": str(small_dataset), "run_name": "tuned", "quantization": "none",
            "data": {"validation_share": 0.1}, "train": {"max_steps": 2, "learning_rate": 5e-2}})
        assert train.run(config, emitter=Emitter(None), control=Control()) == 0
    return RunFolder(home / "runs" / "tuned")


def export(run: RunFolder, out: Path, fmt: str = "adapter") -> tuple[int, Collected]:
    collected = Collected()
    code = job.run(run, ExportOptions(fmt, "f16", out=out), emitter=collected, control=Control(), device="cpu")
    return code, collected


@pytest.fixture
def exports(tmp_path) -> Path:
    """A folder of its own for the test's exports (the test's LlamaDesk home is beside it)."""
    folder = tmp_path / "exports"
    folder.mkdir()
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by its relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir())


def user_folder(path: Path) -> Path:
    (path / "old-model").mkdir(parents=True)
    (path / "old-model" / "weights.bin").write_bytes(os.urandom(4096))
    (path / "notes.txt").write_text("my notes\n", encoding="utf-8")
    return path


# ---- whose folder -------------------------------------------------------------------------------------------------

def test_a_folder_of_user_files_is_refused_and_left_byte_for_byte(tuned, exports):
    target = user_folder(exports / "Models")
    before = snapshot(target)
    with pytest.raises(UserError) as raised:
        export(tuned, target)
    error = raised.value
    assert error.kind == "not_ours" and error.where == str(target)
    assert "files LlamaDesk did not write (notes.txt, old-model)" in error.message
    assert "empty or new folder, or a sub-folder" in error.hint and str(target / "tuned-adapter") in error.hint
    assert snapshot(target) == before and siblings(target) == ["Models"]


def test_a_file_where_the_folder_should_be_is_refused(tuned, exports):
    target = exports / "model.bin"
    target.write_bytes(b"not a folder")
    with pytest.raises(UserError, match="this is a file, not a folder"):
        export(tuned, target)
    assert target.read_bytes() == b"not a folder" and siblings(target) == ["model.bin"]


@pytest.mark.parametrize("sibling", ["failed", "partial"])
def test_a_sibling_of_user_files_the_export_would_use_is_refused(tuned, exports, sibling):
    target = exports / "out"
    theirs = user_folder(exports / f"out.{sibling}")
    before = snapshot(theirs)
    with pytest.raises(UserError) as raised:
        export(tuned, target)
    assert raised.value.where == str(theirs) and "holds files LlamaDesk did not write" in raised.value.message
    assert f"rename or move out.{sibling}" in raised.value.hint
    assert snapshot(theirs) == before and siblings(target) == [f"out.{sibling}"]


def test_an_empty_folder_is_used(tuned, exports):
    target = exports / "empty"
    target.mkdir()
    code, events = export(tuned, target)
    assert code == 0 and holds_our_export(target)
    report = json.loads((target / REPORT).read_text(encoding="utf-8"))
    assert set(report["files"]) == {p.name for p in target.iterdir()} - {REPORT}
    assert report["outcome"] == {"export_folder": str(target), "files_in": str(target), "earlier_export": "none"}
    assert siblings(target) == ["empty"]


def test_an_earlier_export_with_user_files_added_is_not_replaced(tuned, exports):
    target = exports / "adapter"
    assert export(tuned, target)[0] == 0
    (target / "notes.txt").write_text("mine\n", encoding="utf-8")
    before = snapshot(target)
    with pytest.raises(UserError) as raised:
        export(tuned, target)
    assert "also holds files LlamaDesk did not write (notes.txt)" in raised.value.message
    assert snapshot(target) == before and siblings(target) == ["adapter"]


# ---- replacing an earlier export ----------------------------------------------------------------------------------

def test_a_new_export_replaces_the_earlier_one_by_a_swap(tuned, exports):
    target = exports / "adapter"
    assert export(tuned, target)[0] == 0
    earlier = target.stat().st_ino
    code, events = export(tuned, target)
    done = events.of(protocol.ExportFinished)[0]
    assert code == 0 and done.folder == str(target) and target.stat().st_ino != earlier
    assert done.verification["outcome"]["earlier_export"] == "replaced"
    assert export_report.outcome(done) == f"Verified: adapter export in {target} (it replaced the earlier export there)"
    assert siblings(target) == ["adapter"], "nothing set aside or half-written is left"


@pytest.mark.slow
def test_after_a_kill_between_the_renames_the_earlier_export_comes_back(tuned, home, exports, tmp_path):
    target = exports / "adapter"
    assert export(tuned, target)[0] == 0
    earlier, before = target.stat().st_ino, snapshot(target)
    marker = tmp_path / "held"
    engine = subprocess.Popen(
        [sys.executable, "-c", HELD_BETWEEN_THE_RENAMES, "export", str(tuned.path), "--format", "adapter",
         "--out", str(target), "--device", "cpu", "--json"],
        env=dict(os.environ, LLAMADESK_HOME=str(home), LLAMADESK_TEST_HOLD_MARKER=str(marker)),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and engine.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), engine.stderr.read().decode()[-2000:] if engine.poll() is not None else "timed out"
    finally:
        engine.kill()
        engine.wait()

    [aside] = [target.parent / name for name in siblings(target) if name.startswith("adapter.old-")]
    assert not target.exists() and aside.stat().st_ino == earlier and snapshot(aside) == before
    assert siblings(target) == sorted(["adapter.partial", aside.name])
    assert holds_our_export(target.parent / "adapter.partial"), "the new export, verified, about to take the name"
    assert earlier_export(target) == aside, "recognised, where it is, before anything is moved back"

    publish.recover(target)
    assert target.stat().st_ino == earlier and snapshot(target) == before
    assert siblings(target) == ["adapter"], "the aside is back under its name and the new build is gone"
    code, events = export(tuned, target)
    assert code == 0 and events.of(protocol.ExportFinished)[0].verification["outcome"]["earlier_export"] == "replaced"


def test_after_a_kill_once_the_new_export_is_in_place_the_aside_goes(tuned, exports):
    """The other side of the swap: the new export already has the name; what was set aside is superseded."""
    target, newer = exports / "adapter", exports / "newer"
    assert export(tuned, target)[0] == 0 and export(tuned, newer)[0] == 0
    inode = newer.stat().st_ino
    target.rename(exports / "adapter.old-1")
    newer.rename(target)
    publish.recover(target)
    assert target.stat().st_ino == inode and siblings(target) == ["adapter"]


def test_a_folder_merely_named_like_an_aside_is_never_touched(tuned, exports):
    target = exports / "adapter"
    theirs = user_folder(exports / "adapter.old-5")
    before = snapshot(theirs)
    assert export(tuned, target)[0] == 0
    assert snapshot(theirs) == before and siblings(target) == ["adapter", "adapter.old-5"]


# ---- a failed verification --------------------------------------------------------------------------------------

def test_a_failed_verification_is_kept_apart_and_the_earlier_export_stays(tuned, exports, monkeypatch):
    target = exports / "model"
    assert export(tuned, target)[0] == 0
    earlier, before = target.stat().st_ino, snapshot(target)
    assert export(tuned, exports / "model.failed")[0] == 0  # an earlier failure of ours, to be replaced
    monkeypatch.setattr(merge, "save", save_damaged(merge.save))

    code, events = export(tuned, target, "merged")
    done = events.of(protocol.ExportFinished)[0]
    failed = exports / "model.failed"
    assert code == 1 and not done.passed and not done.verification["merged"]["passed"]
    assert target.stat().st_ino == earlier and snapshot(target) == before
    assert done.folder == str(failed) and (failed / "model.safetensors").is_file()
    assert not (failed / "adapter_config.json").exists(), "the earlier failure was replaced"
    report = json.loads((failed / REPORT).read_text(encoding="utf-8"))
    assert report["passed"] is False and report["outcome"]["earlier_export"] == "unchanged"
    said = f"Verification failed; the files are kept in {failed}; your earlier export at {target} is unchanged."
    assert events.messages[-1] == protocol.State("failed", said)
    assert export_report.summary(done).startswith(said + "\n") and "How to run it" not in export_report.summary(done)
    assert siblings(target) == ["model", "model.failed"]


@pytest.mark.slow
def test_the_command_line_says_where_a_failed_export_is_when_nothing_was_there(tuned, home, exports):
    """The real engine, its merged weights damaged on the way: the exit status and its last word say where the
    files are, and the export folder itself was never made."""
    target = exports / "model"
    done = subprocess.run([sys.executable, "-c", DAMAGED_MERGED_WEIGHTS, "export", str(tuned.path), "--format",
                           "merged", "--out", str(target), "--device", "cpu", "--json"],
                          capture_output=True, env=dict(os.environ, LLAMADESK_HOME=str(home)), timeout=300)
    messages = protocol.Reader().feed(done.stdout)
    said = f"Verification failed; the files are kept in {target}.failed; nothing was written to {target}."
    assert done.returncode == 1 and messages[-1] == protocol.State("failed", said), done.stderr.decode()[-2000:]
    assert siblings(target) == ["model.failed"]
