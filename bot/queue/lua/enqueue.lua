-- enqueue.lua: queue one job after every check, in one atomic step (JobProducer.enqueue).
-- KEYS: [1] jobs stream, [2] active_jobs, [3] job:{id}, [4] selfie:{id},
--       [5] active:{owner} (the owner's slot), [6] user:{owner} (the owner's job index),
--       [7] the owner's quota counter for today, [8] stats, [9] workers
-- ARGV: [1] key prefix, [2] the job as a JSON object (strings: id, now, cap, quota,
--       quota_ttl, selfie_ttl, job_ttl, index_ttl, owner_key, bot; fields: the job hash as
--       a list of names and values), [3] the selfie
-- Derives from the prefix: job:{id} of the job the owner's slot names (its status).
-- The job travels as one JSON argument, the selfie last, and the reply is one JSON array:
-- the client packs each argument and parses each reply item in Python, which at one
-- enqueue per job costs more than the script does.
-- Returns [verdict, ...]: 'ok', entry, rank, avg, workers; 'busy', active job id;
-- 'full', depth; 'quota', used.
Q.prefix, Q.jobs, Q.active = ARGV[1], KEYS[1], KEYS[2]
local jk, sk, slot, index, quota_key = KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local a = cjson.decode(ARGV[2])
local id = a.id
local current = redis.call('GET', slot)
if current then
  local st = redis.call('HGET', job_key(current), 'status')
  if st == 'queued' or st == 'running' then return cjson.encode({'busy', current}) end
end
local depth = redis.call('ZCARD', Q.active)
if depth >= tonumber(a.cap) then return cjson.encode({'full', depth}) end
local used = tonumber(redis.call('GET', quota_key) or '0')
if used >= tonumber(a.quota) then return cjson.encode({'quota', used}) end
redis.call('INCR', quota_key)
if redis.call('TTL', quota_key) < 0 then redis.call('EXPIRE', quota_key, a.quota_ttl) end

local entry = redis.call('XADD', Q.jobs, '*', 'job_id', id)
local fields = a.fields
for _, v in ipairs({'owner_key', a.owner_key, 'bot', a.bot, 'quota_key', quota_key,
                    'entry', entry}) do
  fields[#fields + 1] = v
end
redis.call('HSET', jk, unpack(fields))
redis.call('EXPIRE', jk, a.job_ttl)
redis.call('SET', sk, ARGV[3], 'EX', a.selfie_ttl)
redis.call('SET', slot, id, 'EX', a.job_ttl)
index_active(id, entry, a.job_ttl)
redis.call('SADD', index, id)
redis.call('EXPIRE', index, a.index_ttl)
local rank = redis.call('ZRANK', Q.active, id)
local avg = redis.call('HGET', KEYS[8], 'avg_job_s') or ''
local workers = redis.call('ZCOUNT', KEYS[9], a.now, '+inf')
return cjson.encode({'ok', entry, rank, avg, workers})
