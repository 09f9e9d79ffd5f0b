"""The ``vault`` command line: a thin shell over :class:`vault.Repository`."""
