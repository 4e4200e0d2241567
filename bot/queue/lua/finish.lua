-- finish.lua: finish a batch of jobs in one call (WorkerQueue.finish_many). Per job:
-- store the result, mark it done or failed and publish its outcome; or, when the job had
-- already ended, only acknowledge its entry ('gone', 'cancelled', 'already'). Fenced: a
-- worker finishes only the delivery it holds -- the entry pending in its name with the
-- delivery count it was handed -- so a worker that was taken for dead and came back (a
-- freeze, a partition) finds its entry taken over and changes nothing ('stale'). Then, if
-- any job was recorded, add the batch's per-job duration to the ETA average and to the
-- averages of the styles recorded (the stuck bounds).
-- KEYS: [1] jobs stream, [2] active_jobs, [3] stats, then per job: job:{id},
--       selfie:{id}, result:{id}
-- ARGV: [1] key prefix, [2] the batch as a JSON object (strings: now, result_ttl, seconds
--       (per job, '' for none), alpha, stats_ttl; jobs: one [job_id, entry_id, consumer,
--       deliveries, status ('done'|'failed'), failure, refund ('1'|'0'), result field
--       names...] per job), then the result field values of every job, in order
--       (binary-safe)
-- Derives from the prefix: the owner's slot and results stream named in each job's hash.
-- Returns a JSON array of one verdict per job ('ok' when recorded).
Q.prefix, Q.jobs, Q.active = ARGV[1], KEYS[1], KEYS[2]
local a = cjson.decode(ARGV[2])
local now, ttl = a.now, a.result_ttl
local nextv = 3  -- the first value argument not yet used
local styles, seen = {}, {}

-- Whether `consumer` still holds `entry` as its `n`-th delivery. An entry no longer
-- pending (the group lost it) is the job's worker's.
local function holds(jk, entry, consumer, n)
  local p = redis.call('XPENDING', Q.jobs, JOBS_GROUP, entry, entry, 1)
  if p[1] then return p[1][2] == consumer and tonumber(p[1][4]) == tonumber(n) end
  local f = redis.call('HMGET', jk, 'status', 'worker')
  return not f[1] or FINAL[f[1]] or f[2] == consumer
end

local function finish_one(id, jk, sk, rk, j)
  local entry, consumer, n, status, failure, refund = j[2], j[3], j[4], j[5], j[6], j[7] == '1'
  local values = {}
  for k = 8, #j do
    values[#values + 1] = j[k]
    values[#values + 1] = ARGV[nextv]
    nextv = nextv + 1
  end
  if not holds(jk, entry, consumer, n) then return 'stale' end
  local st = redis.call('HGET', jk, 'status')
  if not st then drop_entry(entry); redis.call('DEL', sk); return 'gone' end
  if FINAL[st] then drop_entry(entry); return st == 'cancelled' and 'cancelled' or 'already' end
  if status == 'done' then
    redis.call('DEL', rk)
    if #values > 0 then redis.call('HSET', rk, unpack(values)) end
    redis.call('EXPIRE', rk, ttl)
    redis.call('HSET', jk, 'progress', '1.0')
  end
  local style = redis.call('HGET', jk, 'style_id')
  if style and not seen[style] then seen[style] = true; styles[#styles + 1] = style end
  finish(id, jk, sk, status, failure, now, entry, true, false, refund)
  return 'ok'
end

local verdicts = {}
for i, j in ipairs(a.jobs) do
  local k = 4 + (i - 1) * 3  -- this job's job:{id}, selfie:{id}, result:{id}
  verdicts[i] = finish_one(j[1], KEYS[k], KEYS[k + 1], KEYS[k + 2], j)
end
if #styles > 0 and a.seconds ~= '' then
  record_duration(KEYS[3], tonumber(a.seconds), tonumber(a.alpha), a.stats_ttl, styles)
end
return cjson.encode(verdicts)
