"""``python -m vault``: the command line."""

from .cli.main import main

main()
