"""``python -m botmemory``: the same as the ``botmemory`` command."""

from botmemory.cli import main

main()
