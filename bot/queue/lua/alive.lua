-- alive.lua: renew a worker's liveness record and its entry in the workers registry
-- (WorkerLiveness, from the worker's own thread). The record holds two server times (ms),
-- 'first:since': when this worker first created its record, and when the record was
-- created this time (later than `first` when it lapsed and is created again: the worker
-- was frozen or cut off from Redis), so reclaimers know whether to give the others time
-- to renew theirs first (lapsed_consumers in lib.lua).
-- KEYS: [1] alive:{consumer}, [2] workers
-- ARGV: [1] consumer, [2] the record's TTL (ms), [3] now (the worker's clock, s),
--       [4] the registry entry's score (when it lapses, the worker's clock), [5] the
--       registry's own TTL (s), [6] `first` ('' before the worker's first record)
-- Returns `first`.
local now = string.format('%d', now_ms())
local first = ARGV[6]
if first == '' then first = now end
if not redis.call('SET', KEYS[1], first .. ':' .. now, 'NX', 'PX', ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return first
