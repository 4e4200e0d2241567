-- purge_dead.lua: delete every dead letter and the selfies kept for retrying them
-- (QueueAdmin.purge_dead).
-- KEYS: [1] dead-letter stream
-- ARGV: [1] key prefix
-- Derives from the prefix: job:{id} and selfie:{id} of each dead letter's job.
-- Returns how many dead letters were deleted.
Q.prefix = ARGV[1]
local n = 0
for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  local fv = e[2]
  for j = 1, #fv, 2 do
    if fv[j] == 'job_id' and redis.call('HGET', job_key(fv[j + 1]), 'status') == 'dead' then
      redis.call('DEL', selfie_key(fv[j + 1]))
      redis.call('HDEL', job_key(fv[j + 1]), 'dead_entry')
    end
  end
  redis.call('XDEL', KEYS[1], e[1])
  n = n + 1
end
return n
