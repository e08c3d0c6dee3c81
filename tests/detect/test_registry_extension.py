"""A new detector is one module plus its registration: registered here, in the test file, it is
ranked, explained in words in triage and recorded in the run without touching anything else."""

from __future__ import annotations

import numpy as np
import pytest

from core.analysis import runs
from core.analysis.run import analyse
from core.detect import REGISTRY, DetectConfig, DetectInputs, DetectorResult, detect, register
from core.views import triage
from builders import clustered_vectors, import_vectors, text_project

NAME = "every_seventh"
SENTENCE = "the seventh-sample rule picked it"


def _run(inputs: DetectInputs, stride: int = 7) -> DetectorResult:
    n = inputs.labels.size
    pick = np.arange(n) % stride == 3
    suggested = np.where(pick, (inputs.labels + 1) % inputs.n_classes, -1)
    return DetectorResult(NAME, "Every seventh sample, for the test.", np.where(pick, 1.0, 0.0), pick, suggested,
                          params={"stride": stride})


@pytest.fixture
def registered():
    register(NAME, "Every seventh sample, for the test.", needs=(), weight=1.0, suggestion_priority=1,
             speaks_when_flagged=True, params={"stride": 7}, explain=lambda row, context: SENTENCE)(_run)
    yield
    REGISTRY.pop(NAME)


def test_a_registered_detector_is_ranked_suggested_and_flagged(registered, planted):
    vectors, noisy, truth, wrong = planted
    d = detect(vectors, noisy, 3, config=DetectConfig(device="cpu"))
    picked = np.flatnonzero(np.arange(noisy.size) % 7 == 3)
    assert NAME in d.results and d.params["detectors"][NAME] == {"stride": 7}
    assert d.flagged[picked].all() and (d.suggested_by[picked] == NAME).all()
    # weight 1 next to confident: its picks outrank every ordinary sample
    others = np.setdiff1d(np.arange(noisy.size), np.concatenate([picked, wrong]))
    assert d.rank[picked].max() < d.rank[others].min()


def test_a_registered_detector_reaches_the_run_and_the_triage_wording(registered, tmp_path):
    truth = ["cat", "dog", "bird"] * 20
    ids = [f"s{i:02d}" for i in range(60)]
    project = text_project(tmp_path / "p", [{"id": i, "text": f"text {i}", "label": lab} for i, lab in zip(ids, truth)])
    import_vectors(project, "test-vectors", ids, clustered_vectors(truth))
    result = analyse(project, with_slices=False)
    assert NAME in result.run.record["detectors"]
    assert result.run.record["detector_params"][NAME] == {"stride": 7}
    _, flags = runs.flags(project)
    row = flags[flags["id"] == "s03"].iloc[0].to_dict()
    assert row[f"det_{NAME}"] == 1.0 and row["suggested_by"] == NAME and row["flagged"]
    sentences = {name: text for name, _, text in triage.evidence_in_words(row, triage.detector_names(flags))}
    assert sentences[NAME] == SENTENCE[0].upper() + SENTENCE[1:] + "."
