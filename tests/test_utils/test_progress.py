# Copyright (c) mmwsss contributors.
"""Progress bar interval: a line per 30 s in a log, tqdm's default on a
terminal."""
import io

from mmwsss.utils.progress import LOG_INTERVAL, bar_interval


class _Tty(io.StringIO):

    def isatty(self):
        return True


def test_bar_interval():
    assert bar_interval(io.StringIO()) == LOG_INTERVAL == 30.0
    assert bar_interval(_Tty()) == 0.1
    closed = io.StringIO()
    closed.close()  # isatty raises ValueError on a closed stream
    assert bar_interval(closed) == LOG_INTERVAL
    assert bar_interval(object()) == LOG_INTERVAL
