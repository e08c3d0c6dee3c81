"""The review room: what people decide about samples and the trail it leaves.

- :mod:`core.review.audit`: the hash-chained, append-only review log (``review.sqlite``);
- :mod:`core.review.decisions`: writing and reading decisions (one, or many in one transaction);
- :mod:`core.review.labels`: the labels in force, replayed from the given labels and the log;
- :mod:`core.review.guidelines`: guideline versions, the decisions citing them, the re-review queue;
- :mod:`core.review.roles`: reviewers, leads and a closed project, enforced here, not in pages;
  the rules themselves (:mod:`core.review.access`) are checked on every event the log writes;
- :mod:`core.review.identity`: names normalised, no look-alikes, the OS user, whether a login is configured;
- :mod:`core.review.checkpoints`: the log's (size, head) recorded in the project and signed for outside.

Import the module you need (``from core.review import decisions``); this package re-exports
nothing, so importing it stays cheap. Nothing here imports core.detect, core.analysis or
core.slices, nor streamlit.
"""
