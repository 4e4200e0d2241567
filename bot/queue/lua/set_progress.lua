-- set_progress.lua: record a running job's progress (WorkerQueue.set_progress); a job
-- that is not running (or vanished) is left alone, no key created.
-- KEYS: [1] job:{id}
-- ARGV: [1] fraction done (0..1)
-- Returns 1 when recorded, else 0.
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[1])
return 1
