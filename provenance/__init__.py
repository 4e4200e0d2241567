"""Provenance: label every avatar as AI-made (C2PA, XMP, invisible watermark) and verify images.

Used by the worker (to label what it makes) and by the bot (to answer /verify). Depends on
the core (`bot`) only.
"""
