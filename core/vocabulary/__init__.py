"""Shipped word lists (one term a line); read with :func:`core.slices.load_vocabulary`."""
