"""The composition root: the `avatarbot` command line and the wiring of every process.

The only package allowed to import everything (core, adapters, generation, provenance);
nothing imports it.
"""
