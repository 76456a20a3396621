"""The run config's schema is the one definition of every setting: each field has a form widget, is accepted by
``--set``, round-trips through YAML, and is read by the estimator exactly when it is marked as modelled."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

import resources
from engine.light import catalog, demo_settings, estimator, schema
from engine.light import config as run_config
from engine.light.config import SETTINGS
from engine.light.schema import Setting

# Values a setting may take besides its default, for the settings whose type alone does not suggest one.
OTHER_VALUES = {"model": ["llama-3.2-1b", "llama-3.1-8b"], "dataset": ["other.jsonl"], "run_name": ["renamed"],
                "lora.target_modules": [["q_proj", "v_proj"]], "data.columns": [{"instruction": "question"}],
                "distributed.gpus": [["0", "1"]]}


def other_values(s: Setting) -> list:
    """Valid values other than the default: every other choice, the flipped flag, numbers around the default."""
    if s.path in OTHER_VALUES:
        return OTHER_VALUES[s.path]
    if s.choices is not None and s.base_type is list:  # several of the choices at once
        return [[c] for c in s.choices] + [list(s.choices[:2])]
    if s.choices is not None:
        return [c for c in s.choices if c != s.default]
    if s.base_type is bool:
        return [not s.default]
    numbers = [s.default * 2, s.default + 1, s.default / 2, s.low, s.high, 0] if s.default else [1, 2, 0.5]
    kind = s.base_type
    found = []
    for value in numbers:
        if value is None or (kind is int and value != int(value)):
            continue
        value = kind(value)
        if value != s.default and s.problem(value) is None and value not in found:
            found.append(value)
    return found


def test_every_setting_has_another_valid_value_and_documentation():
    for s in SETTINGS:
        assert other_values(s), s.path
        assert len(s.doc) > 15 and s.label, s.path


def test_every_setting_round_trips_through_yaml_and_set(tmp_path):
    changed = {s.path: other_values(s)[0] for s in SETTINGS}
    config = run_config.RunConfig().with_values(changed)
    path = tmp_path / "run.yaml"
    run_config.save(config, path)
    assert run_config.load(path) == config
    items = [f"{path}={json.dumps(value)}" for path, value in changed.items()]
    assert run_config.load(None, items) == config


def test_the_command_line_accepts_every_setting_by_its_dotted_name():
    changed = {s.path: other_values(s)[-1] for s in SETTINGS}
    arguments = [item for path, value in changed.items() for item in ("--set", f"{path}={json.dumps(value)}")]
    out = subprocess.run([sys.executable, "-m", "engine", "config", *arguments], capture_output=True, text=True,
                         check=True).stdout
    printed = yaml.safe_load(out)
    for path, value in changed.items():
        assert schema.get_path(printed, path) == value, path


def test_unknown_and_out_of_range_settings_are_refused_by_path():
    with pytest.raises(run_config.ConfigError) as caught:
        run_config.load(None, ["train.micro_bach=2", "data.cutoff=8", "train.scheduler=sideways"])
    text = "\n".join(caught.value.problems)
    assert "train.micro_bach: unknown field (did you mean 'micro_batch'?)" in text
    assert "data.cutoff: 8 is out of range" in text and "train.scheduler: 'sideways' is not one of" in text


@pytest.mark.parametrize("s", SETTINGS, ids=[s.path for s in SETTINGS])
def test_the_estimate_depends_on_a_setting_exactly_when_it_is_marked_as_modelled(s):
    spec = catalog.find("llama-3.1-8b")
    changes = []  # (before, after) totals, on two bases: some settings matter only with one example per row
    for base in (run_config.RunConfig(model="llama-3.1-8b"),
                 run_config.RunConfig(model="llama-3.1-8b").with_values({"train.micro_batch": 1}),
                 run_config.RunConfig(model="llama-3.1-8b").with_values({"distributed.gpus": ["0", "1"]})):
        before = estimator.estimate(spec, base).total
        for value in other_values(s):
            config = base.with_values({s.path: value})
            changes.append((before, estimator.estimate(catalog.find(value) if s.path == "model" else spec,
                                                       config).total))
    if s.memory:
        assert any(a != b for a, b in changes), f"{s.path} is marked as modelled but changes nothing"
    else:
        assert all(a == b for a, b in changes), f"{s.path} changes the estimate but is not marked"


def test_the_train_page_form_has_a_widget_for_every_setting_and_round_trips_it(qtbot, home):
    from gui.app_state import AppState
    from gui.pages.train_page import TrainPage

    state = AppState(str(home))
    page = TrainPage(state, engine_command=[sys.executable, "-c", "pass"])
    qtbot.addWidget(page)
    shown = {path for form in page.forms for path in form.widgets}
    assert shown == {s.path for s in SETTINGS}
    changed = run_config.RunConfig().with_values({s.path: other_values(s)[0] for s in SETTINGS})
    state.set_config(changed)
    assert run_config.from_mapping(page.form_data(), require_dataset=False) == changed
    for form in page.forms:
        for path, widget in form.widgets.items():
            assert widget.toolTip() == run_config.BY_PATH[path].doc and widget.accessibleName()


def test_presets_and_the_demo_use_the_dotted_names():
    from gui.pages.train_page import presets

    found = presets()
    assert set(found) == {"Quick test", "Balanced", "Quality"}
    for name, overrides in found.items():
        assert set(overrides) <= set(run_config.BY_PATH), name
        run_config.from_mapping(run_config.apply_overrides({}, overrides), require_dataset=False)
    demo = demo_settings.demo_config()
    assert demo.model == "demo" and demo.dataset == str(resources.path(demo_settings.SAMPLE))
