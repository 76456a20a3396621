"""`llamadesk-engine data check` run for real in a subprocess, with the demo model's tokenizer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "resources" / "sample" / "harbor_lights.json"


def data_check(home: Path, source, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine", "--home", str(home), "data", "check", str(source), *options],
        cwd=REPO, capture_output=True, text=True, encoding="utf-8", timeout=120,
    )


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_sample_dataset_json(demo_home):
    result = data_check(demo_home, SAMPLE, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["detection"]["format"] == "alpaca"
    assert "'instruction'" in data["detection"]["reason"] and "'output'" in data["detection"]["reason"]
    assert data["file_type"] == "json"
    assert data["template"] == "model"
    report = data["report"]
    assert report["rows_read"] == 155 and report["rows_usable"] == 155 and report["rows_skipped"] == 0
    assert report["problems"] == []
    assert data["stats"]["rows"] == 155
    assert 0 < data["stats"]["trained_tokens"] < data["stats"]["total_tokens"]
    assert len(data["preview"]) == 3
    assert "Traceback" not in result.stderr


def test_human_readable_output(demo_home, tmp_path):
    """Some rows usable: exit 0, the problems listed with row, line and field, the preview marked."""
    rows = [{"instruction": "Say hi.", "output": "Hi!"}, {"instruction": "Say bye."},
            {"instruction": "Count.", "output": 3}]
    mixed = write_text(tmp_path / "mixed.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    result = data_check(demo_home, mixed, "--validation-share", "0")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Format:   alpaca" in out
    assert "Rows:     3 read, 2 usable, 1 skipped" in out
    assert "error: row 2 (line 2), field 'output': the field is missing" in out
    assert "warning: row 3 (line 3), field 'output'" in out
    assert "Preview (trained tokens shown between ⟦ ⟧)" in out
    assert "⟦Hi!<|im_end|>⟧" in out and "⟦3<|im_end|>⟧" in out
    assert "\033[" not in out  # no colour when not writing to a terminal


def test_zero_usable_rows_exit_1_with_problems(demo_home, tmp_path):
    lines = ['{"instruction": "a", "output": ""}', '{"instruction": "b"}', '{"instruction": "c", "output": ']
    broken = write_text(tmp_path / "broken.jsonl", "\n".join(lines) + "\n")
    result = data_check(demo_home, broken, "--json")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["report"]["rows_usable"] == 0
    assert data["report"]["rows_skipped"] == 3
    located = sorted((p["row"], p["line"], p["field"], p["code"]) for p in data["report"]["problems"])
    assert located == [(1, 1, "output", "empty_assistant"), (2, 2, "output", "missing_field"),
                       (3, 3, "", "malformed_json")]
    assert "Traceback" not in result.stderr


def test_missing_file_is_a_clear_error(demo_home, tmp_path):
    missing = tmp_path / "does-not-exist.jsonl"
    result = data_check(demo_home, missing)
    assert result.returncode == 1
    assert f"error: {missing}: no such file or folder" in result.stderr
    assert "check the path" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.slow
def test_a_run_after_a_check_with_the_same_settings_starts_from_the_checks_cache(home, tiny_model, small_dataset,
                                                                                  tmp_path):
    """The Dataset page checks with the run config the Train page then starts: the run must not tokenize again."""
    import yaml

    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"model": str(tiny_model), "dataset": str(small_dataset), "quantization": "none",
                                      "data": {"cutoff": 256, "validation_share": 0.1},
                                      "train": {"max_steps": 1, "save_steps": 10}}))
    check = subprocess.run([sys.executable, "-m", "engine", "--home", str(home), "data", "check", str(config),
                            "--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout)["cache_hit"] is False
    entries = list((home / "cache" / "tokenized").iterdir())
    run = subprocess.run([sys.executable, "-m", "engine", "--home", str(home), "train", str(config), "--json",
                          "--set", "run_name=after-check"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    logs = [json.loads(line)["message"] for line in run.stdout.splitlines() if '"type": "log"' in line]
    assert any(m.startswith("data (from the cache)") for m in logs), logs
    assert list((home / "cache" / "tokenized").iterdir()) == entries  # nothing tokenized again
