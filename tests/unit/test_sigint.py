"""SIGINT for the pytest plugin's sessions: heard when inherited ignored, held during cleanup."""

from __future__ import annotations

import os
import signal

import pytest

from labctl.cli.sigint import heed_sigint
from labctl.runtime.signals import interrupts_held


@pytest.fixture
def sigint_restored():
    old = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, old)


def test_an_ignored_sigint_is_heard_again_until_restored(sigint_restored) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a CI script's background job starts
    restore = heed_sigint()
    assert restore is not None and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        signal.sigtimedwait([], 0)  # any syscall: the handler runs on the way back (main thread)
    restore()
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def test_a_sigint_handled_by_python_is_left_alone(sigint_restored) -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    assert heed_sigint() is None and signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_sigint_inside_the_cleanup_is_held_and_counted(sigint_restored) -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with interrupts_held() as held:
        os.kill(os.getpid(), signal.SIGINT)
        signal.sigtimedwait([], 0)
        done = True
    assert done and held == [signal.SIGINT]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
