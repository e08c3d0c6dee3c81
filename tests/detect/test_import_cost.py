"""A CPU analysis imports neither torch nor cleanlab's Datalab stack (each a second or two of a
10,000-row analysis on two cores), and cleanlab's Datalab still works in the same process.

Each check runs in a fresh interpreter: what a module imports is only visible from a clean start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

DETECT_ON_CPU = """
import json, sys
import numpy as np
from core.detect import detect
rng = np.random.default_rng(0)
x = rng.normal(size=(300, 16)).astype("float32")
labels = rng.integers(0, 3, 300)
probabilities = rng.dirichlet(np.ones(3), 300)
found = detect(x, labels, 3, probabilities=probabilities)
print(json.dumps({"torch": "torch" in sys.modules, "datasets": "datasets" in sys.modules,
                  "datalab": "cleanlab.datalab.datalab" in sys.modules,
                  "confident_ran": "confident" in found.timings}))
"""


def _run(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _gpu_driver_present() -> bool:
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/proc/driver/nvidia", "/dev/kfd"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the driver check is Linux's")
def test_detection_on_a_machine_without_gpu_does_not_import_torch_or_datalab():
    if _gpu_driver_present():
        pytest.skip("a GPU driver is present: torch is rightly asked which device to use")
    seen = _run(DETECT_ON_CPU)
    assert seen["confident_ran"]
    assert not seen["torch"]
    assert not seen["datalab"]
    assert not seen["datasets"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the driver check is Linux's")
def test_map_and_slices_on_a_machine_without_gpu_do_not_import_torch():
    if _gpu_driver_present():
        pytest.skip("a GPU driver is present: torch is rightly asked which device to use")
    seen = _run("""
import json, sys
import numpy as np
from core.slices.clustering import find_slices
from core.slices.projection import project_2d
x = np.random.default_rng(0).normal(size=(400, 24)).astype("float32")
points = project_2d(x, max_points_fit=300)  # 100 rows placed beside their fitted neighbours
slices = find_slices(x)
print(json.dumps({"torch": "torch" in sys.modules, "points": bool(np.isfinite(points).all()),
                  "slices": int(np.unique(slices).size)}))
""")
    assert seen["points"] and seen["slices"] >= 2
    assert not seen["torch"]


def test_cleanlab_datalab_still_loads_after_amend_imported_cleanlab():
    pytest.importorskip("datasets", reason="Datalab needs Hugging Face datasets (the bench extra)")
    seen = _run("""
import json, sys
from core.detect.cleanlab_import import import_cleanlab
cleanlab = import_cleanlab()
before = "cleanlab.datalab.datalab" in sys.modules
from cleanlab import Datalab
import cleanlab.datalab.datalab as module
print(json.dumps({"before": before, "real": Datalab is module.Datalab,
                  "issue_manager": cleanlab.IssueManager.__name__}))
""")
    assert seen == {"before": False, "real": True, "issue_manager": "IssueManager"}


def test_cleanlab_imported_first_is_left_as_it_is():
    seen = _run("""
import json
import cleanlab
stand_in = cleanlab.__dict__.get("Datalab")
from core.detect.cleanlab_import import import_cleanlab
print(json.dumps({"same": import_cleanlab() is cleanlab, "untouched": cleanlab.__dict__.get("Datalab") is stand_in,
                  "no_hook": "__getattr__" not in cleanlab.__dict__}))
""")
    assert seen == {"same": True, "untouched": True, "no_hook": True}
