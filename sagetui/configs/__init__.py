"""Run configs shipped with the package (the demo's live run)."""
