import time as _time

__version__ = "0.1.0"

# When the package was first imported, a few milliseconds after the process started:
# `aecompress train --time-budget` counts the whole command from here, imports included.
STARTED = _time.monotonic()
