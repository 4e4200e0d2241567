-- retry_dead.lua: requeue dead-lettered jobs whose selfie is still there; drop dead
-- letters that can no longer be retried (QueueAdmin.retry_dead). A requeued job's stale
-- 'dead' outcome is withdrawn so it is never delivered after this.
-- KEYS: [1] dead-letter stream, [2] jobs stream, [3] active_jobs
-- ARGV: [1] key prefix, [2] now, [3] job TTL (s), then dead-letter entry ids
-- Derives from the prefix: job:{id} and selfie:{id} of each dead letter's job, and the
-- owner's slot and results stream named in its hash.
-- Returns {requeued, dropped}.
Q.prefix, Q.jobs, Q.active, Q.dead = ARGV[1], KEYS[2], KEYS[3], KEYS[1]
local job_ttl = ARGV[3]
local requeued, dropped = 0, 0
for i = 4, #ARGV do
  local dead_entry = ARGV[i]
  local e = redis.call('XRANGE', Q.dead, dead_entry, dead_entry)
  if e[1] then
    local id = field(e[1][2], 'job_id')
    local jk = id and job_key(id)
    local f = jk and redis.call('HMGET', jk, 'status', 'owner_key', 'bot', 'outcome_entry')
    if f and f[1] == 'dead' and redis.call('EXISTS', selfie_key(id)) == 1 then
      if f[3] and f[4] then
        redis.call('XACK', results_key(f[3]), DELIVERY_GROUP, f[4])
        redis.call('XDEL', results_key(f[3]), f[4])
      end
      local entry = redis.call('XADD', Q.jobs, '*', 'job_id', id)
      redis.call('HSET', jk, 'status', 'queued', 'attempts', '0', 'progress', '0.0',
                 'delivered', '0', 'entry', entry)
      redis.call('HDEL', jk, 'failure', 'finished_at', 'started_at', 'outcome_entry',
                 'dead_entry', 'worker', 'delivering', 'lease_until')
      redis.call('EXPIRE', jk, job_ttl)
      index_active(id, entry, job_ttl)
      redis.call('SET', slot_key(f[2]), id, 'NX', 'EX', job_ttl)
      requeued = requeued + 1
    else
      dropped = dropped + 1
    end
    redis.call('XDEL', Q.dead, dead_entry)
  end
end
return {requeued, dropped}
