# Copyright (c) mmwsss contributors.
"""Progress bars that suit both a terminal and a log file."""
import sys
from typing import IO, Optional

#: Seconds between two progress lines when the bar goes to a file (a log):
#: tqdm would otherwise write one line per image, 10,000 lines for the
#: 3,400 images of a demo seed's proposals.
LOG_INTERVAL = 30.0


def bar_interval(stream: Optional[IO] = None) -> float:
    """``mininterval`` for a tqdm bar written to ``stream`` (stderr).

    0.1 s (tqdm's default) on a terminal, :data:`LOG_INTERVAL` otherwise.
    """
    stream = sys.stderr if stream is None else stream
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return 0.1 if tty else LOG_INTERVAL
