"""Import cleanlab without its Datalab, which Amend never uses.

``import cleanlab`` (and so any ``from cleanlab.filter import ...``) imports every subpackage, and
Datalab with them whenever Hugging Face ``datasets`` is installed: ``datasets``, ``huggingface_hub``
and pyarrow's dataset layer, 1.3-1.9 s on two cores of a 10,000-row analysis that needs none of
them (bench/README.md, "Beside cleanlab's Datalab"). :func:`import_cleanlab` imports cleanlab with
those two modules held back and gives ``cleanlab.Datalab`` and ``cleanlab.IssueManager`` back as
attributes loaded on first use, so code in the same process that does use Datalab still gets it.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

__all__ = ["import_cleanlab"]

#: cleanlab's lazily given attributes -> (module, name) they come from.
_DEFERRED = {
    "Datalab": ("cleanlab.datalab.datalab", "Datalab"),
    "IssueManager": ("cleanlab.datalab.internal.issue_manager", "IssueManager"),
}


def _load_deferred(name: str):
    if name not in _DEFERRED:
        raise AttributeError(f"module 'cleanlab' has no attribute {name!r}")
    module, attribute = _DEFERRED[name]
    value = getattr(importlib.import_module(module), attribute)
    setattr(sys.modules["cleanlab"], name, value)
    return value


def import_cleanlab() -> ModuleType:
    """The cleanlab package, imported (once per process) without Datalab's dependencies."""
    if "cleanlab" in sys.modules:
        return sys.modules["cleanlab"]
    held = [m for m, _ in _DEFERRED.values() if m not in sys.modules]
    for module in held:
        sys.modules[module] = None  # makes its import fail fast; cleanlab then binds a stand-in
    try:
        import cleanlab
    finally:
        for module in held:
            if sys.modules.get(module, 0) is None:
                del sys.modules[module]
    for name in _DEFERRED:
        # Drop the stand-in ("Datalab is not available") so that the first use imports the real one.
        cleanlab.__dict__.pop(name, None)
    cleanlab.__getattr__ = _load_deferred  # a module-level __getattr__ (PEP 562)
    return cleanlab
