"""The queue's key names: the key schema of docs/reliability.md, in one place.

The Lua scripts get these names as KEYS; a script that learns of a job only while it
runs (an entry it read, a field of a job hash) derives that job's keys from the prefix
with the same names, in lua/lib.lua.
"""

from __future__ import annotations

import hashlib

from bot.jobs import Owner

DAY_S = 86_400

JOBS_GROUP = "workers"
"""Consumer group of the jobs stream; every worker process is a consumer in it."""
DELIVERY_GROUP = "delivery"
"""Consumer group of each bot's results stream; every bot process is a consumer in it."""
HANDED_BACK = "handed-back"
"""The jobs group's consumer that holds the entries a stopping worker gave back before
starting them: it never has a liveness record, so the living take them at once."""


class QueueKeys:
    """Every key of one deployment's queue, all under `{prefix}:`."""

    def __init__(self, prefix: str) -> None:
        self.prefix = f"{prefix}:"
        """The prefix as the scripts take it (ending in ':')."""
        self.jobs = self.prefix + "jobs"
        """Stream of job entries; consumer group `JOBS_GROUP`."""
        self.dead = self.prefix + "dead"
        """Stream of dead letters (the operator's inbox)."""
        self.active_jobs = self.prefix + "active_jobs"
        """Sorted set of queued and running job ids in enqueue order."""
        self.workers = self.prefix + "workers"
        """Sorted set of live workers scored by when their registration lapses."""
        self.stats = self.prefix + "stats"
        """Hash with the moving average of a job's duration (ETAs)."""

    def alive(self, consumer: str) -> str:
        """A worker's liveness record: a string with a TTL of a few seconds, renewed by
        the worker's own thread; its value, 'first:since', is when (server time, ms) the
        worker first created it and when it was created this time."""
        return f"{self.prefix}alive:{consumer}"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def selfie(self, job_id: str) -> str:
        return f"{self.prefix}selfie:{job_id}"

    def result(self, job_id: str) -> str:
        return f"{self.prefix}result:{job_id}"

    def results(self, bot: str) -> str:
        """Stream of outcomes for one bot deployment; consumer group `DELIVERY_GROUP`."""
        return f"{self.prefix}results:{bot}"

    def slot(self, owner: Owner) -> str:
        """The user's one active job id."""
        return f"{self.prefix}active:{owner.key}"

    def user_jobs(self, owner: Owner) -> str:
        """Set of the user's job ids, so forgetting a user needs no SCAN."""
        return f"{self.prefix}user:{owner.key}"

    def quota(self, owner: Owner, now: float) -> str:
        """The user's counter for the UTC day of `now`, named by a hash (no identifier in
        clear)."""
        day = int(now // DAY_S)
        digest = hashlib.sha256(f"{self.prefix}|{owner.key}|{day}".encode()).hexdigest()[:32]
        return f"{self.prefix}quota:{digest}"
