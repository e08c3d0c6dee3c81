"""Streamlit pages. Each page reads core/ and renders; no analysis logic, no storage calls."""
