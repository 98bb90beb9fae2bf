"""The guard of the ``trains`` marker: a test that trains a model must say so.

A test trains when a ``torch.optim`` optimiser steps with gradients, in this process, during the
test's setup or call: a zoo member, a tuning trial, SimCLR pretraining, TENT or SHOT adaptation, a
hand-written loop. Unless the test is marked ``@pytest.mark.trains`` it fails at that first step,
so ``pytest -m "not trains"`` stays the quick subset. Fixtures named in ``shared`` (the session's
trained zoo: trained once, for every test that uses it) may train for an unmarked test. Training
in another process (a spawned worker, ``python -m ...`` in a subprocess) is not seen: mark such
a test by hand.
"""

from __future__ import annotations

from collections.abc import Collection, Generator
from typing import Any

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

MARK = "trains"
MESSAGE = "this test trains: mark it @pytest.mark.trains"


class TrainingGuard:
    """A pytest plugin: fails the unmarked test whose setup or call steps an optimiser."""

    def __init__(self, shared: Collection[str] = ()) -> None:
        self.shared = frozenset(shared)
        self.item: pytest.Item | None = None  # the test whose setup or call runs now
        self.allowed = 0  # how many ``shared`` fixtures are being built now
        self.stepped: list[str] = []  # the optimisers the current test stepped unmarked
        self._handle: Any = None

    def install(self) -> None:
        self._handle = register_optimizer_step_pre_hook(self._check)

    def remove(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _check(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        item = self.item
        if item is None or self.allowed or item.get_closest_marker(MARK) is not None:
            return
        params = (p for group in optimizer.param_groups for p in group["params"])
        if all(p.grad is None for p in params):  # moves nothing: a learning-rate schedule's test
            return
        self.stepped.append(type(optimizer).__name__)
        pytest.fail(f"{MESSAGE} ({type(optimizer).__name__}.step ran in {item.nodeid})")

    def _watch(self, item: pytest.Item) -> Generator[None, Any, Any]:
        self.item, self.stepped = item, []
        try:
            result = yield
        finally:
            self.item = None
        if self.stepped:  # the failure raised at the step was swallowed on the way out
            pytest.fail(f"{MESSAGE} ({', '.join(self.stepped)}.step ran in {item.nodeid})")
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, Any, Any]:
        return (yield from self._watch(item))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        return (yield from self._watch(item))

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef) -> Generator[None, Any, Any]:
        if fixturedef.argname not in self.shared:
            return (yield)
        self.allowed += 1
        try:
            return (yield)
        finally:
            self.allowed -= 1


def register(config: pytest.Config, shared: Collection[str] = ()) -> TrainingGuard:
    """Install the guard for this session (``pytest_configure``); ``unregister`` removes it."""
    guard = TrainingGuard(shared)
    guard.install()
    config.pluginmanager.register(guard, "training_guard")
    return guard


def unregister(config: pytest.Config) -> None:
    guard = config.pluginmanager.get_plugin("training_guard")
    if guard is not None:
        guard.remove()
        config.pluginmanager.unregister(guard)
