-- finish.lua: finish a batch of jobs in one call (WorkerQueue.finish_many). Per job: store
-- the result, mark it done or failed and publish its outcome; or, when the job had
-- already ended, only acknowledge its entry ('gone', 'cancelled', 'already'). Then, if any
-- job was recorded, add the batch's per-job duration to the ETA average.
-- KEYS: [1] jobs stream, [2] active_jobs, [3] stats, then per job: job:{id},
--       selfie:{id}, result:{id}
-- ARGV: [1] key prefix, [2] the batch as a JSON object (strings: now, result_ttl, seconds
--       (per job, '' for none), alpha, stats_ttl; jobs: one [job_id, entry_id, status
--       ('done'|'failed'), failure, refund ('1'|'0'), result field names...] per job),
--       then the result field values of every job, in order (binary-safe)
-- Derives from the prefix: the owner's slot and results stream named in each job's hash.
-- Returns a JSON array of one verdict per job ('ok' when recorded).
Q.prefix, Q.jobs, Q.active = ARGV[1], KEYS[1], KEYS[2]
local a = cjson.decode(ARGV[2])
local now, ttl = a.now, a.result_ttl
local nextv = 3  -- the first value argument not yet used
local function finish_one(id, jk, sk, rk, entry, status, failure, refund, names)
  local values = {}
  for _, name in ipairs(names) do
    values[#values + 1] = name
    values[#values + 1] = ARGV[nextv]
    nextv = nextv + 1
  end
  local st = redis.call('HGET', jk, 'status')
  if not st then drop_entry(entry); redis.call('DEL', sk); return 'gone' end
  if FINAL[st] then drop_entry(entry); return st == 'cancelled' and 'cancelled' or 'already' end
  if status == 'done' then
    redis.call('DEL', rk)
    if #values > 0 then redis.call('HSET', rk, unpack(values)) end
    redis.call('EXPIRE', rk, ttl)
    redis.call('HSET', jk, 'progress', '1.0')
  end
  finish(id, jk, sk, status, failure, now, entry, true, false, refund)
  return 'ok'
end
local verdicts = {}
for i, j in ipairs(a.jobs) do
  local names = {}
  for k = 6, #j do names[#names + 1] = j[k] end
  local k = 4 + (i - 1) * 3  -- this job's job:{id}, selfie:{id}, result:{id}
  verdicts[i] = finish_one(j[1], KEYS[k], KEYS[k + 1], KEYS[k + 2], j[2], j[3], j[4],
                           j[5] == '1', names)
end
local recorded = false
for _, v in ipairs(verdicts) do recorded = recorded or v == 'ok' end
if recorded and a.seconds ~= '' then
  record_duration(KEYS[3], tonumber(a.seconds), tonumber(a.alpha), a.stats_ttl)
end
return cjson.encode(verdicts)
