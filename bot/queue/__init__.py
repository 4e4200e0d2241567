"""The job queue: a thin, crash-safe layer on Redis Streams shared by bots and workers.

One view of the queue per audience, each built from the same Redis client (binary, not
decoding) and `QueueConfig`:

- `JobProducer` (producer.py): a bot submits a job, follows it, cancels it, forgets a user.
- `WorkerQueue` (worker.py): a worker claims jobs, finishes them, gives back the ones it
  did not start when stopping, and takes over the jobs of workers that stopped (found by
  their lapsed liveness records, kept by `WorkerLiveness` in liveness.py, or by a stuck
  bound); it runs the upkeep (upkeep.py) on that timer.
- `DeliveryQueue` (delivery.py): a bot reads outcomes, leases them, confirms them;
  `DeliveryPump` (pump.py) drives that protocol and hands outcomes to the adapters.
- `QueueAdmin` (admin.py): an operator's stats and dead letters.

`QueueKeys` (keys.py) names every key; the Lua scripts behind every atomic change are in
`lua/` (scripts.py loads them). The guarantees, the key schema and the delivery lease are
described once, in docs/reliability.md.
"""

from bot.queue.admin import DeadLetter, QueueAdmin, QueueStats
from bot.queue.client import QueueClient
from bot.queue.config import QueueConfig
from bot.queue.delivery import Delivery, DeliveryClaim, DeliveryQueue
from bot.queue.errors import QueueError, QueueFullError, QuotaExceededError, UserBusyError
from bot.queue.keys import DAY_S, QueueKeys
from bot.queue.liveness import WorkerLiveness
from bot.queue.producer import ForgetReceipt, JobProducer, Receipt
from bot.queue.pump import DeliveryPump
from bot.queue.worker import ClaimedJob, WorkerQueue

__all__ = [
    "DAY_S",
    "ClaimedJob",
    "DeadLetter",
    "Delivery",
    "DeliveryClaim",
    "DeliveryPump",
    "DeliveryQueue",
    "ForgetReceipt",
    "JobProducer",
    "QueueAdmin",
    "QueueClient",
    "QueueConfig",
    "QueueError",
    "QueueFullError",
    "QueueKeys",
    "QueueStats",
    "QuotaExceededError",
    "Receipt",
    "UserBusyError",
    "WorkerLiveness",
    "WorkerQueue",
]
