-- reclaim.lua: take over entries of the jobs stream idle longer than `min_idle_ms` (their
-- worker died or hung) for `consumer`, XAUTOCLAIM from `cursor`, each through take_over
-- (restarted, or dead-lettered above `max` deliveries) (WorkerQueue.reclaim).
-- KEYS: [1] jobs stream, [2] active_jobs, [3] dead-letter stream
-- ARGV: [1] key prefix, [2] now, [3] consumer, [4] min_idle_ms, [5] cursor, [6] count,
--       [7] max deliveries
-- Derives from the prefix: job:{id} and selfie:{id} of each entry taken over, and the
-- owner's slot and results stream named in the hash of a job that ends here.
-- Returns {next cursor, take_over's items}.
Q.prefix, Q.jobs, Q.active, Q.dead = ARGV[1], KEYS[1], KEYS[2], KEYS[3]
local now, consumer, max = ARGV[2], ARGV[3], tonumber(ARGV[7])
local r = redis.call('XAUTOCLAIM', Q.jobs, JOBS_GROUP, consumer, ARGV[4], ARGV[5],
                     'COUNT', ARGV[6])
local out = {}
for _, e in ipairs(r[2]) do
  if e then  -- Redis 6.2 returns deleted entries as nil; 7.x drops them from the PEL
    local entry = e[1]
    local p = redis.call('XPENDING', Q.jobs, JOBS_GROUP, entry, entry, 1)
    local n = (p[1] and tonumber(p[1][4])) or 1
    take_over(out, entry, field(e[2], 'job_id'), n, max, now, consumer)
  end
end
return {r[1], out}
