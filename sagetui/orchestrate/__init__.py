"""Run orchestration: one config or a sweep, in sim or live mode, written to the store."""
