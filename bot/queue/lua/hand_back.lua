-- hand_back.lua: a stopping worker gives back the jobs it claimed and has not started
-- (WorkerQueue.hand_back). Each goes back to 'queued' (its start undone: attempts,
-- worker, started_at) and its entry to the hand-back consumer, its delivery count lowered
-- by one: the worker that takes it (reclaim_dead.lua, at once) counts the delivery again,
-- so a give-back never brings a job nearer the dead-letter limit. Entries this worker no
-- longer holds are left alone; a job that ended meanwhile (cancelled) only has its entry
-- acknowledged.
-- KEYS: [1] jobs stream, then per job: job:{id}
-- ARGV: [1] consumer, then per job: its entry id (in the order of KEYS)
-- Returns how many were handed back.
Q.jobs = KEYS[1]
local consumer = ARGV[1]
local handed = 0
for i = 2, #ARGV do
  local entry, jk = ARGV[i], KEYS[i]
  local p = redis.call('XPENDING', Q.jobs, JOBS_GROUP, entry, entry, 1)
  if p[1] and p[1][2] == consumer then
    local f = redis.call('HMGET', jk, 'status', 'worker')
    if not f[1] or FINAL[f[1]] then
      drop_entry(entry)
    else
      if f[1] == 'running' and f[2] == consumer then
        redis.call('HSET', jk, 'status', 'queued', 'progress', '0.0')
        redis.call('HINCRBY', jk, 'attempts', -1)
        redis.call('HDEL', jk, 'started_at', 'worker', 'stuck_ms')
      end
      redis.call('XCLAIM', Q.jobs, JOBS_GROUP, HANDED_BACK, 0, entry,
                 'RETRYCOUNT', math.max(0, tonumber(p[1][4]) - 1), 'JUSTID')
      handed = handed + 1
    end
  end
end
return handed
