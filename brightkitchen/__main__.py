"""``python -m brightkitchen`` is the same as the ``brightkitchen`` command."""

from brightkitchen.cli import main

main()
