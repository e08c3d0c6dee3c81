"""Per-failure hypotheses: why did the model (or the probe) get these samples wrong, in words.

The loop, one job per module:

- :mod:`core.hypotheses.failures` — which samples to explain (misclassified, flagged, a selection, a
  slice) and what a model server is shown of each (given label, top-3 predictions, image or text);
- :mod:`core.hypotheses.prompts` — the per-project prompt and ``data_quality`` vocabulary, versioned
  (append-only, like guidelines), and the JSON schema every answer must follow;
- :mod:`core.hypotheses.client` — the two API dialects (Ollama ``/api/chat``, OpenAI-compatible
  ``/v1/chat/completions`` as vLLM and llama.cpp's server speak it) over real HTTP;
- :mod:`core.hypotheses.generate` — one hypothesis per failure with bounded concurrency, timeouts,
  resumable, every answer (or failure, with its reason) recorded;
- :mod:`core.hypotheses.store` — the project.sqlite tables (schema 4);
- :mod:`core.hypotheses.clusters` — compress, embed, cluster (k by silhouette) and name each
  free-text dimension;
- :mod:`core.hypotheses.review` — agree / disagree / skip in the review log, agreement rates, the
  selection sent to triage, the list of targeted actions.

Hypotheses are explanations, not detectors: nothing here feeds the ranking of flags.
"""

# The choices the CLI offers, here so that building `amend`'s parser imports no HTTP client or pandas.
APIS = ("ollama", "openai")
SCHEMA_STYLES = ("json_schema", "json_object")
SOURCES = ("errors", "flagged")
VERDICTS = ("agree", "disagree", "skip")
