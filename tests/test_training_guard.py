"""The guard of the ``trains`` marker (``training_guard``), run on inner pytest sessions (their
test modules have names of their own: an inner test_zoo.py would clash with tests/test_zoo.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.trains  # the inner sessions' tests step optimisers in this process

CONFTEST = """
import training_guard

def pytest_configure(config):
    training_guard.register(config, ["shared_model"])

def pytest_unconfigure(config):
    training_guard.unregister(config)
"""

TESTS = """
import pytest
import torch


def step():
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    return model


@pytest.fixture(scope="session")
def shared_model():
    return step()


@pytest.fixture
def own_model():
    return step()


def test_unmarked_steps():
    step()


@pytest.mark.trains
def test_marked_steps():
    step()


@pytest.mark.trains
class TestMarkedClass:
    def test_steps(self):
        step()


def test_the_shared_fixture_trains_for_everyone(shared_model):
    assert shared_model.weight.grad is not None


def test_unmarked_own_fixture_steps(own_model):
    pass


def test_unmarked_swallows_the_failure():
    try:
        step()
    except BaseException:
        pass


def test_backward_without_a_step_is_not_training():
    torch.nn.Linear(2, 1)(torch.ones(1, 2)).sum().backward()


def test_a_step_without_gradients_is_not_training():
    torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1).step()  # as a schedule's test
"""


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(
        "[pytest]\nmarkers =\n    trains: trains a model itself\naddopts = -p no:randomly\n"
    )
    pytester.makeconftest(CONFTEST)
    return pytester


def test_unmarked_tests_that_step_an_optimiser_fail(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_guarded_steps=TESTS)
    result = inner.runpytest()
    result.assert_outcomes(passed=5, failed=2, errors=1)
    for test in ("steps", "swallows_the_failure", "own_fixture_steps"):  # the fixture: an error
        result.stdout.fnmatch_lines(
            [
                f"E * Failed: this test trains: mark it @pytest.mark.trains "
                f"(SGD.step ran in test_guarded_steps.py::test_unmarked_{test})"
            ]
        )
    # -m "not trains" runs the rest, the shared fixture's training included
    quick = inner.runpytest("-m", "not trains")
    quick.assert_outcomes(passed=3, failed=2, errors=1, deselected=2)


def test_the_guard_sees_a_zoo_member_train(inner: pytest.Pytester, tiny: Path) -> None:
    """The real entry point (fused optimiser, grad scaler) stops at its first step, unmarked."""
    inner.makepyfile(
        test_guarded_zoo=f"""
        import pytest
        from pipeline.commands import zoo

        ARGS = ["--dataset", "folder", "--data", {str(tiny)!r}, "--models", "squeezenet1_1",
                "--weights", "none", "--recipe", "fast", "--batch-size", "8", "--epochs", "1",
                "--image-size", "32", "--no-progress"]

        def test_unmarked(tmp_path):
            zoo.main([*ARGS, "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c")])

        @pytest.mark.trains
        def test_marked(tmp_path):
            assert zoo.main([*ARGS, "--out", str(tmp_path / "out"),
                             "--cache-dir", str(tmp_path / "c")]) == 0
        """
    )
    result = inner.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*this test trains: mark it @pytest.mark.trains (*.step ran in*"])
