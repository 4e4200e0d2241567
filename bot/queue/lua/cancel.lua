-- cancel.lua: cancel the owner's job (JobProducer.cancel). A queued job ends at once; a
-- running one is marked: its worker keeps its stream entry, and FINISH, seeing
-- 'cancelled', discards the result. Either way the owner's slot is free at once and the
-- selfie goes now. No outcome is published: the bot answers the user itself.
-- KEYS: [1] jobs stream, [2] active_jobs, [3] job:{id}, [4] selfie:{id}
-- ARGV: [1] key prefix, [2] job id, [3] owner key (the requester), [4] now
-- Derives from the prefix: the owner's slot, named by the job hash's owner_key.
-- Returns 'cancelled' | 'cancelled_running' | 'missing' | 'denied' | 'final'.
Q.prefix, Q.jobs, Q.active = ARGV[1], KEYS[1], KEYS[2]
local jk, sk = KEYS[3], KEYS[4]
local id, owner_key, now = ARGV[2], ARGV[3], ARGV[4]
local f = redis.call('HMGET', jk, 'status', 'owner_key', 'entry')
if not f[1] then return 'missing' end
if f[2] ~= owner_key then return 'denied' end
if FINAL[f[1]] then return 'final' end
if f[1] == 'queued' then
  finish(id, jk, sk, 'cancelled', 'cancelled', now, f[3], false, false, true)
  return 'cancelled'
end
redis.call('HSET', jk, 'status', 'cancelled', 'failure', 'cancelled', 'finished_at', now)
redis.call('DEL', sk)
free_slot(id, owner_key)
return 'cancelled_running'
