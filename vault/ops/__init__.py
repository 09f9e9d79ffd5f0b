"""The verbs: each module implements one operation over the store and the refs.

A verb is a function over the repository's collaborators (:class:`vault.ops.parts.Parts`), never
over the ``Repository`` facade that calls it; ``tests/test_layers.py`` checks that no module here
imports the facade or the command line.
"""
