"""The map's compiled code is kept on disk: a second process loads UMAP's layout instead of
compiling it again (core.slices.projection._import_umap_caching_compilation)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# One map of 300 random rows in a fresh process; prints how often numba found the layout's
# compiled code in its cache, and how often it had to compile it.
_ONE_MAP = """
import numpy as np
from core.slices.projection import project_2d
project_2d(np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32), device="cpu")
import umap.layouts
stats = umap.layouts._nb_optimize_layout_euclidean_single_epoch.stats
print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
"""


def _map_in_fresh_process(cache_dir: Path) -> tuple[int, int]:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", _ONE_MAP], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    hits, misses = done.stdout.split()[-2:]
    return int(hits), int(misses)


@pytest.mark.slow
def test_a_second_process_loads_the_compiled_layout_from_the_cache(tmp_path):
    first = _map_in_fresh_process(tmp_path)
    assert first == (0, 1)  # nothing cached yet: compiled once, and written
    assert list(tmp_path.rglob("*.nbi")), "numba wrote no cache index"
    second = _map_in_fresh_process(tmp_path)
    assert second == (1, 0)  # loaded, not compiled
