"""`with time_limit(s):` raises TimeoutError when the block runs longer than s seconds, so a test
of code that might loop fails instead of hanging the suite (SIGALRM: main thread, Unix)."""

import signal
from contextlib import contextmanager


@contextmanager
def time_limit(seconds: float, what: str = "still running after the time limit: it loops"):
    def expired(signum, frame):
        raise TimeoutError(what)

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
