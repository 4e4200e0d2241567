-- alive.lua: renew a worker's liveness record and its entry in the workers registry
-- (WorkerLiveness, from the worker's own thread). The record holds the server time (ms)
-- it was created at, so a reclaimer knows how long it has itself been alive
-- (lapsed_consumers in lib.lua).
-- KEYS: [1] alive:{consumer}, [2] workers
-- ARGV: [1] consumer, [2] the record's TTL (ms), [3] now (the worker's clock, s),
--       [4] the registry entry's score (when it lapses, the worker's clock), [5] the
--       registry's own TTL (s)
-- Returns 1 when the record was created, 0 when it was renewed.
local created = 1
if not redis.call('SET', KEYS[1], string.format('%d', now_ms()), 'NX', 'PX', ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  created = 0
end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return created
