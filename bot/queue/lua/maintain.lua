-- maintain.lua: housekeeping on the reclaim timer (upkeep.maintain): trim dead letters
-- older than `dead_min_id`, prune the active index of vanished or finished jobs (the
-- first `limit`) and the worker registry of expired workers.
-- KEYS: [1] dead-letter stream, [2] active_jobs, [3] workers
-- ARGV: [1] key prefix, [2] now, [3] dead_min_id, [4] limit
-- Derives from the prefix: job:{id} of each job in the active index.
-- Returns {dead_trimmed, active_pruned, workers_pruned}.
Q.prefix = ARGV[1]
local dead, active = KEYS[1], KEYS[2]
local trimmed = 0
if redis.call('EXISTS', dead) == 1 then
  trimmed = redis.call('XTRIM', dead, 'MINID', ARGV[3])
end
local pruned = 0
for _, id in ipairs(redis.call('ZRANGE', active, 0, tonumber(ARGV[4]) - 1)) do
  local st = redis.call('HGET', job_key(id), 'status')
  if st ~= 'queued' and st ~= 'running' then
    redis.call('ZREM', active, id)
    pruned = pruned + 1
  end
end
local workers = redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[2])
return {trimmed, pruned, workers}
