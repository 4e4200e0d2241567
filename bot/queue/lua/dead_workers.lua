-- dead_workers.lua: the consumers of the jobs group whose entries the living should take
-- now (lapsed_consumers in lib.lua), taking nothing (WorkerQueue.dead_workers: a worker
-- looks before it waits for its turn to take them over with reclaim_dead.lua).
-- KEYS: [1] jobs stream
-- ARGV: [1] key prefix, [2] the asking consumer, [3] how long (ms) it gives the others to
--       renew their records after Redis started or its own record lapsed, [4] '1' to
--       judge workers by their liveness records
-- Derives from the prefix: alive:{consumer} of the asking consumer and of each consumer
-- holding entries.
-- Returns their names.
Q.prefix, Q.jobs = ARGV[1], KEYS[1]
return lapsed_consumers(ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1')
