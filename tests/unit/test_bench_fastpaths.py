"""``bench/suite.py --fastpaths``: every fast path measured, each variant a valid setting."""

from __future__ import annotations

from bench import fastpaths
from tasks.fastpath import NAMES
from tasks.fastpath.registry import wanted_from


def test_every_registered_fast_path_has_the_figures_it_exists_for():
    assert fastpaths.names() == NAMES
    assert set(fastpaths.FIGURES) == set(NAMES)


def test_each_variant_turns_off_exactly_what_it_names():
    plan = {label: wanted_from(setting, NAMES) for label, setting, _ in fastpaths.variants()}
    assert plan.pop(fastpaths.ALL_ON) == frozenset(NAMES)
    assert plan.pop(fastpaths.ALL_OFF) == frozenset()
    assert plan == {f"{name} off": frozenset(NAMES) - {name} for name in NAMES}


def test_a_variant_runs_only_the_scenarios_of_the_fast_path_it_turns_off():
    scenarios = {label: s for label, _, s in fastpaths.variants()}
    assert scenarios["unacked-after-pool-write off"] == ["latency"]
    assert scenarios["redis-clients off"] == ["throughput"]
    assert scenarios[fastpaths.ALL_ON] == ["throughput", "latency"]


def test_gain_is_how_much_better_the_figure_is_with_the_fast_path():
    assert round(fastpaths.gain(on=1100.0, off=1000.0, higher_is_better=True), 1) == 10.0
    assert round(fastpaths.gain(on=2.0, off=2.5, higher_is_better=False), 1) == 25.0
    assert fastpaths.gain(on=None, off=2.5, higher_is_better=False) is None


def test_a_few_fast_paths_can_be_measured_again_alone():
    plan = fastpaths.variants(fastpaths.chosen("unacked-after-pool-write"))
    assert [label for label, _, _ in plan] == [fastpaths.ALL_ON, fastpaths.ALL_OFF,
                                               "unacked-after-pool-write off"]
    assert {tuple(s) for _, _, s in plan} == {("latency",)}
