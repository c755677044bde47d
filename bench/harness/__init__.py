"""The bench harness: what every script under bench/ shares.

* ``units``: sizes on the command line (``1GiB``), human-readable sizes, the I/O constants.
* ``machine``: the machine a figure was taken on (CPU, memory, disk, load), scratch space on a
  real disk, dropping the page cache.
* ``site``: Meridian as a contender: one site (``meridian site run``) with a watchdog, or two
  (``meridian up --sites east,west``).
* ``rivals``: a moto S3 server and the contenders over it (Meridian, rclone mount, s3fs, a local
  directory), each mounted and torn down on an ExitStack.
* ``timing``: the timed file operations, memory priming, the CPU meter that marks samples taken
  while other processes were busy, medians, spread and percentiles.
* ``report``: the compare scripts' run loop and their results (``bench/results/NAME.md`` and
  the ``.json`` twin).

The scripts run as ``python bench/NAME.py``: bench/ is then first on ``sys.path`` and they import
``harness.*``. Stdlib only, plus what the repository's venv has.
"""
