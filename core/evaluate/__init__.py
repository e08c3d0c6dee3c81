"""The evaluation room: what the corrections were worth.

- :mod:`core.evaluate.compare`: the before/after comparison: a linear probe trained on one label
  set against one trained on another (or a user's imported predictions), evaluated overall, per
  class and per slice of an analysis run (``amend compare``, the compare page).

Import the module you need (``from core.evaluate import compare``); this package re-exports
nothing. Never imports streamlit.
"""
