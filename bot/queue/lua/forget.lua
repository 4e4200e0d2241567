-- forget.lua: delete every key about one user (JobProducer.forget_user): their jobs,
-- selfies, results, outcomes waiting for delivery, dead letters, slot and index. A queued
-- job is cancelled (its entry dropped); a running one is left to its worker, whose FINISH
-- finds the job gone, acknowledges and discards the result. The quota counter stays.
-- KEYS: [1] user:{owner} (the owner's job index), [2] active:{owner}, [3] jobs stream,
--       [4] active_jobs, [5] dead-letter stream
-- ARGV: [1] key prefix
-- Derives from the prefix: job:{id}, selfie:{id} and result:{id} of each job in the index,
-- and the results stream named by each job hash's bot field.
-- Returns {jobs, selfies, results, queued, running, outcomes, dead}: counts deleted.
Q.prefix, Q.jobs, Q.active, Q.dead = ARGV[1], KEYS[3], KEYS[4], KEYS[5]
local jobs, selfies, results, queued, running, outcomes, dead = 0, 0, 0, 0, 0, 0, 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local jk = job_key(id)
  local f = redis.call('HMGET', jk, 'status', 'entry', 'bot', 'outcome_entry', 'dead_entry')
  if f[1] == 'queued' then drop_entry(f[2]); queued = queued + 1 end
  if f[1] == 'running' then running = running + 1 end
  if f[3] and f[4] then
    local ok = results_key(f[3])
    redis.call('XACK', ok, DELIVERY_GROUP, f[4])
    outcomes = outcomes + redis.call('XDEL', ok, f[4])
  end
  if f[5] then dead = dead + redis.call('XDEL', Q.dead, f[5]) end
  redis.call('ZREM', Q.active, id)
  jobs = jobs + redis.call('DEL', jk)
  selfies = selfies + redis.call('DEL', selfie_key(id))
  results = results + redis.call('DEL', result_key(id))
end
redis.call('DEL', KEYS[1], KEYS[2])
return {jobs, selfies, results, queued, running, outcomes, dead}
