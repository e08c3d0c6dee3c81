"""The views room: what the app's pages show, as plain data and pure functions (no streamlit).

- :mod:`core.views.summary`: a project at a glance (the home page, and notebook users);
- :mod:`core.views.overview`: the overview page's map, slices ranked by error, class figures,
  domain gaps and the comparison of representations;
- :mod:`core.views.triage`: the triage page's queue, the evidence in words, one sample's view and
  the threaded :class:`core.views.triage.Prefetcher` that prepares the next ones.

Pages import these and only render. Import the module you need (``from core.views import
triage``); this package re-exports nothing.
"""
