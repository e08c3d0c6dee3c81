"""Keyboard focus for pages with single-key shortcuts (a helper module, not a page).

Streamlit ignores a plain-letter shortcut while the focus is in a text field, and its pickers
keep the focus after a choice: after choosing a filter or a class, **K** or **L** typed into the
picker instead of deciding, until the reviewer clicked somewhere else. And Esc in a picker
cleared the choice instead of leaving it.

:func:`release_focus_after_choices` adds one listener to the page (once per browser tab) that
gives the focus back to the page:

- after a choice in a picker (Enter or a click on an option), once the picker has taken it;
- after Enter in a one-line text box (a reason, a search), once Streamlit has taken the text;
- on Esc in any text field or picker (the picker's own Esc, which clears the choice, is stopped).

Typing into a picker to search it, and typing a reason, work as before.
"""

from __future__ import annotations

import streamlit as st

# Runs in the page itself (st.html with scripts allowed). Installed once per tab: Streamlit keeps
# the document between reruns, so a flag on window stops the listeners piling up.
_SCRIPT = """
<script>
(() => {
  if (window.__amendFocusRelease) { return; }
  window.__amendFocusRelease = true;
  const inMain = (el) => el && el.closest && el.closest('[data-testid="stMain"]');
  const isField = (el) => el && (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA');
  const isPicker = (el) => isField(el) && el.getAttribute('role') === 'combobox';
  const release = () => {
    const el = document.activeElement;
    if (isField(el) && inMain(el)) { el.blur(); }
  };
  // Esc: leave the field, keep what is in it (capture phase, before the picker clears it).
  document.addEventListener('keydown', (event) => {
    const el = event.target;
    if (event.key !== 'Escape' || !isField(el) || !inMain(el)) { return; }
    if (isPicker(el) && el.getAttribute('aria-expanded') === 'true') { return; }  // Esc closes the list first
    event.preventDefault();
    event.stopImmediatePropagation();
    el.blur();
  }, true);
  // Enter in a picker with its list open chooses an option, and Enter in a text box submits it:
  // leave the field once the choice or the text is taken.
  document.addEventListener('keydown', (event) => {
    const el = event.target;
    if (event.key !== 'Enter' || !inMain(el)) { return; }
    if ((isPicker(el) && el.getAttribute('aria-expanded') === 'true') || (el.tagName === 'INPUT' && !isPicker(el))) {
      setTimeout(release, 50);
    }
  }, true);
  // A click on an option of an open list.
  document.addEventListener('click', (event) => {
    const option = event.target && event.target.closest && event.target.closest('[role="option"]');
    if (option) { setTimeout(release, 50); }
  }, true);
})();
</script>
"""


def release_focus_after_choices() -> None:
    """Make single-key shortcuts work right after a choice in a picker, and on Esc (see module doc)."""
    st.html(_SCRIPT, unsafe_allow_javascript=True)
