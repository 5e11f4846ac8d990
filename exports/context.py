"""What a table or figure builder gets: the selected runs and lazy access to bulk data."""

from __future__ import annotations

from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from exports.model import RunView, SampleView, load_histograms, load_samples
from store import Store


@dataclass
class ExportContext:
    store: Store
    runs: list[RunView]
    allow_mismatch: bool = False
    _samples: dict[int, list[SampleView]] | None = field(default=None, repr=False)

    def samples(self, run_id: int) -> list[SampleView]:
        """Per-second samples of one run (loaded once for every selected run)."""
        if self._samples is None:
            self._samples = load_samples(self.store, [r.id for r in self.runs])
        return self._samples.get(run_id, [])

    def histogram(self, run_ids: list[int], metric: str, cls: str) -> HdrHistogram | None:
        return load_histograms(self.store, run_ids, metric, cls)
