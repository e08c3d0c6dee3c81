"""The analysis room: running the detectors and slices on a project, and the runs they leave.

- :mod:`core.analysis.run`: one analysis of a project (detectors + slices on one representation
  and/or a user's probabilities), stored as a run with its record;
- :mod:`core.analysis.runs`: runs as stored (evidence and slices tables, the run registry), the
  flags view (a run's evidence joined with the labels in force now), the CLI's flag records, and
  bulk acceptance of suggestions (:func:`core.analysis.runs.accept_suggested`).

Import the module you need (``from core.analysis import runs``); this package re-exports nothing,
so importing it stays cheap (``amend flags`` loads no model library). Never imports streamlit.
"""
