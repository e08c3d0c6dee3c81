"""Amend's core: ingest, embed, analyse, decide, export. Never imports streamlit.

The documented Python face is in :mod:`core.api`; the CLI and the app use the same calls.
"""

__version__ = "0.1.0"
