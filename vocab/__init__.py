"""The one request vocabulary every package speaks (docs/contracts.md).

A leaf: it imports nothing of ours, so the workload generator, the control
plane, the simulator, the load generator's client and the store all read and
write the very same record.
"""

from vocab.request import (
    LLM_CLASSES,
    PRIORITIES,
    REQUEST_CLASSES,
    SCHEDULED_CLASSES,
    STATUSES,
    Request,
)

__all__ = ["LLM_CLASSES", "PRIORITIES", "REQUEST_CLASSES", "SCHEDULED_CLASSES", "STATUSES",
           "Request"]
