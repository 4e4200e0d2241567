"""The Lua scripts behind `bot.queue.JobQueue`: every state change that must be atomic.

Each script starts with the same prelude: key helpers built from the key prefix (ARGV[1],
ending in ':'), and `finish()`, the one way a job reaches a final state (acknowledge and
delete its stream entry, free the user's slot, drop it from the active index, delete the
selfie, optionally refund the daily quota and publish an outcome for the delivering bot).

Scripts compute some key names from data they read (a job's results stream comes from its
route). That is fine on a single Redis server, which is what avatarbot supports; it would
not be on Redis Cluster.
"""

from __future__ import annotations

JOBS_GROUP = "workers"
"""Consumer group of the jobs stream; every worker process is a consumer in it."""
DELIVERY_GROUP = "delivery"
"""Consumer group of each bot's results stream; every bot process is a consumer in it."""

_PRELUDE = f"""
local P = ARGV[1]
local JOBS = P .. 'jobs'
local ACTIVE = P .. 'active_jobs'
local DEAD = P .. 'dead'
local JOBS_GROUP = '{JOBS_GROUP}'
local DELIVERY_GROUP = '{DELIVERY_GROUP}'
local function jkey(id) return P .. 'job:' .. id end
local function skey(id) return P .. 'selfie:' .. id end
local function rkey(id) return P .. 'result:' .. id end
local function slot_key(owner_key) return P .. 'active:' .. owner_key end
local function out_key(bot) return P .. 'results:' .. bot end
local FINAL = {{done=true, failed=true, cancelled=true, dead=true}}

-- A flat name/value list (HGETALL, a stream entry's fields) as a table, so cjson encodes
-- it as one JSON object.
local function hash_obj(flat)
  local t = {{}}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

-- The queue's own fields of a job hash (see bot.queue): scripts read them, clients have no
-- use for them, so job records sent back leave them out (less to encode and parse).
local BOOKKEEPING = {{owner_key=true, bot=true, quota_key=true, entry=true,
                     outcome_entry=true, dead_entry=true, worker=true, delivering=true,
                     lease_until=true}}

local function job_record(job)
  local t = {{}}
  for k, v in pairs(job) do if not BOOKKEEPING[k] then t[k] = v end end
  return t
end

local function field(flat, name)
  if flat then
    for i = 1, #flat, 2 do if flat[i] == name then return flat[i + 1] end end
  end
  return nil
end

local function drop_entry(entry)
  if entry and entry ~= '' then
    redis.call('XACK', JOBS, JOBS_GROUP, entry)
    redis.call('XDEL', JOBS, entry)
  end
end

local function free_slot(id, owner_key)
  if owner_key then
    local sk = slot_key(owner_key)
    if redis.call('GET', sk) == id then redis.call('DEL', sk) end
  end
  redis.call('ZREM', ACTIVE, id)
end

local function publish(id, bot, status, failure)
  local ok = out_key(bot)
  if redis.call('EXISTS', ok) == 0 then
    redis.call('XGROUP', 'CREATE', ok, DELIVERY_GROUP, '0', 'MKSTREAM')
  end
  local oid
  if failure ~= '' then
    oid = redis.call('XADD', ok, '*', 'job_id', id, 'status', status, 'failure', failure)
  else
    oid = redis.call('XADD', ok, '*', 'job_id', id, 'status', status)
  end
  redis.call('HSET', jkey(id), 'outcome_entry', oid)
  return oid
end

-- Move job `id` (whose hash exists) to a final state.
local function finish(id, status, failure, now, entry, announce, keep_selfie, refund)
  local jk = jkey(id)
  local f = redis.call('HMGET', jk, 'owner_key', 'bot', 'quota_key')
  drop_entry(entry)
  redis.call('HSET', jk, 'status', status, 'finished_at', now)
  if failure ~= '' then redis.call('HSET', jk, 'failure', failure) end
  if not keep_selfie then redis.call('DEL', skey(id)) end
  free_slot(id, f[1])
  if refund and f[3] then
    if tonumber(redis.call('GET', f[3]) or '0') > 0 then redis.call('DECR', f[3]) end
  end
  if announce and f[2] then publish(id, f[2], status, failure) end
end

-- Hand job `id` (delivered as stream entry `entry`, for the n-th time) to `consumer`.
-- Appends two reply items to `out`: a JSON header [entry, verdict, id, n, job hash as an
-- object (verdict 'ok' only)] and the selfie ('' unless 'ok'). Two flat items per job
-- instead of a nested row keep the worker's reply parsing cheap.
local function start_one(out, entry, id, now, consumer, n)
  local jk = jkey(id)
  local st = redis.call('HGET', jk, 'status')
  local verdict, job, selfie = 'ok', nil, ''
  if not st then
    drop_entry(entry); verdict = 'gone'
  elseif FINAL[st] then
    drop_entry(entry); verdict = 'skip'
  else
    selfie = redis.call('GET', skey(id))
    if not selfie then
      finish(id, 'failed', 'selfie_expired', now, entry, true, false, true)
      verdict, selfie = 'expired', ''
    else
      redis.call('HSET', jk, 'status', 'running', 'started_at', now, 'worker', consumer,
                 'progress', '0.0')
      redis.call('HINCRBY', jk, 'attempts', 1)
      job = job_record(hash_obj(redis.call('HGETALL', jk)))
    end
  end
  out[#out + 1] = cjson.encode({{entry, verdict, id, n, job}})
  out[#out + 1] = selfie
end

-- Fold one job's duration (seconds) into the EWMA used for ETAs; returns the new average.
local function record_duration(x, alpha, ttl)
  local k = P .. 'stats'
  local avg = tonumber(redis.call('HGET', k, 'avg_job_s') or '')
  if avg then avg = alpha * x + (1 - alpha) * avg else avg = x end
  redis.call('HSET', k, 'avg_job_s', tostring(avg))
  redis.call('HINCRBY', k, 'samples', 1)
  redis.call('EXPIRE', k, ttl)
  return avg
end
"""

# ARGV: prefix, the job as a JSON object (strings: id, now, cap, quota, quota_ttl,
#       selfie_ttl, job_ttl, index_ttl, owner_key, bot, quota_key; fields: the job hash
#       as a list of names and values), selfie.
# Few arguments, the selfie last, and a reply that is one JSON array: the client packs
# each argument and parses each reply item in Python (redis-py also copies the bytes
# packed so far once per argument that follows them), which at one enqueue per job costs
# more than the script does. Reply: [verdict, ...]: 'ok', entry, rank, avg, workers;
# 'busy', active job id; 'full', depth; 'quota', used.
ENQUEUE = (
    _PRELUDE
    + """
local a = cjson.decode(ARGV[2])
local id, owner_key, quota_key = a.id, a.owner_key, a.quota_key
local slot = slot_key(owner_key)
local current = redis.call('GET', slot)
if current then
  local st = redis.call('HGET', jkey(current), 'status')
  if st == 'queued' or st == 'running' then return cjson.encode({'busy', current}) end
end
local depth = redis.call('ZCARD', ACTIVE)
if depth >= tonumber(a.cap) then return cjson.encode({'full', depth}) end
local used = tonumber(redis.call('GET', quota_key) or '0')
if used >= tonumber(a.quota) then return cjson.encode({'quota', used}) end
redis.call('INCR', quota_key)
if redis.call('TTL', quota_key) < 0 then redis.call('EXPIRE', quota_key, a.quota_ttl) end

local jk = jkey(id)
local entry = redis.call('XADD', JOBS, '*', 'job_id', id)
local fields = a.fields
for _, v in ipairs({'owner_key', owner_key, 'bot', a.bot, 'quota_key', quota_key,
                    'entry', entry}) do
  fields[#fields + 1] = v
end
redis.call('HSET', jk, unpack(fields))
redis.call('EXPIRE', jk, a.job_ttl)
redis.call('SET', skey(id), ARGV[3], 'EX', a.selfie_ttl)
redis.call('SET', slot, id, 'EX', a.job_ttl)
local ms, seq = string.match(entry, '^(%d+)-(%d+)$')
redis.call('ZADD', ACTIVE, tonumber(ms) * 1024 + math.min(tonumber(seq), 1023), id)
redis.call('EXPIRE', ACTIVE, a.job_ttl)
local index = P .. 'user:' .. owner_key
redis.call('SADD', index, id)
redis.call('EXPIRE', index, a.index_ttl)
local rank = redis.call('ZRANK', ACTIVE, id)
local avg = redis.call('HGET', P .. 'stats', 'avg_job_s') or ''
local workers = redis.call('ZCOUNT', P .. 'workers', a.now, '+inf')
return cjson.encode({'ok', entry, rank, avg, workers})
"""
)

# ARGV: prefix, now, consumer, count.  Reads up to `count` new entries for `consumer`
# without blocking (XREADGROUP >) and starts them, in one round trip; returns start_one's
# items (two per entry), none when nothing is waiting. The worker blocks (a plain
# XREADGROUP BLOCK, then START) only when this came back empty.
CLAIM = (
    _PRELUDE
    + """
local now, consumer = ARGV[2], ARGV[3]
local out = {}
local r = redis.call('XREADGROUP', 'GROUP', JOBS_GROUP, consumer, 'COUNT', ARGV[4],
                     'STREAMS', JOBS, '>')
if not r then return out end
for _, e in ipairs(r[1][2]) do
  local id = field(e[2], 'job_id')
  if id then start_one(out, e[1], id, now, consumer, 1) else drop_entry(e[1]) end
end
return out
"""
)

# ARGV: prefix, now, consumer, then entry_id/job_id pairs (from a blocking XREADGROUP).
START = (
    _PRELUDE
    + """
local now, consumer = ARGV[2], ARGV[3]
local out = {}
for i = 4, #ARGV, 2 do start_one(out, ARGV[i], ARGV[i + 1], now, consumer, 1) end
return out
"""
)

# ARGV: prefix, now, consumer, min_idle_ms, cursor, count, max_deliveries.  Returns
# {next cursor, start_one's items}; a dead-lettered job's header has the verdict 'dead'.
RECLAIM = (
    _PRELUDE
    + """
local now, consumer, max = ARGV[2], ARGV[3], tonumber(ARGV[7])
local r = redis.call('XAUTOCLAIM', JOBS, JOBS_GROUP, consumer, ARGV[4], ARGV[5],
                     'COUNT', ARGV[6])
local out = {}
for _, e in ipairs(r[2]) do
  if e then  -- Redis 6.2 returns deleted entries as nil; 7.x drops them from the PEL
    local entry, id = e[1], field(e[2], 'job_id')
    local p = redis.call('XPENDING', JOBS, JOBS_GROUP, entry, entry, 1)
    local n = (p[1] and tonumber(p[1][4])) or 1
    if not id then
      drop_entry(entry)
    elseif n > max then
      local jk = jkey(id)
      local st = redis.call('HGET', jk, 'status')
      if st and not FINAL[st] then
        local dead = redis.call('XADD', DEAD, '*', 'job_id', id, 'entry', entry,
                                'deliveries', n, 'dead_at', now)
        redis.call('HSET', jk, 'dead_entry', dead)
        -- the selfie stays (until its own TTL) so an operator can retry the job
        finish(id, 'dead', 'dead_letter', now, entry, true, true, true)
        out[#out + 1] = cjson.encode({entry, 'dead', id, n})
        out[#out + 1] = ''
      else
        drop_entry(entry)
      end
    else
      start_one(out, entry, id, now, consumer, n)
    end
  end
end
return {r[1], out}
"""
)

# ARGV: prefix, consumer, entry ids...  Resets the idle time of entries this consumer still
# owns (XCLAIM JUSTID does not count a delivery); returns the ids another consumer took
# (entries no longer pending were finished meanwhile and are left out).
HEARTBEAT = (
    _PRELUDE
    + """
local consumer = ARGV[2]
local mine, lost = {}, {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', JOBS, JOBS_GROUP, ARGV[i], ARGV[i], 1)
  if p[1] then  -- not pending any more: finished meanwhile, neither ours nor lost
    if p[1][2] == consumer then mine[#mine + 1] = ARGV[i] else lost[#lost + 1] = ARGV[i] end
  end
end
if #mine > 0 then
  redis.call('XCLAIM', JOBS, JOBS_GROUP, consumer, 0, unpack(mine), 'JUSTID')
end
return lost
"""
)

# ARGV: prefix, the batch as a JSON object (strings: now, result_ttl, seconds (per job,
#       '' for none), alpha, stats_ttl; jobs: one [job_id, entry_id, status
#       ('done'|'failed'), failure, refund ('1'|'0'), result field names...] per job),
#       then the result field values of every job, in order (binary-safe).
# Finishes a batch in one call: per job, store the result, mark it done or failed and
# publish its outcome, or do nothing but acknowledge when it had already ended ('gone',
# 'cancelled', 'already'); then, if any job was recorded, fold the batch's per-job
# duration into the ETA average.
# Returns a JSON array of one verdict per job ('ok' when recorded).
FINISH = (
    _PRELUDE
    + """
local a = cjson.decode(ARGV[2])
local now, ttl = a.now, a.result_ttl
local nextv = 3  -- the first value argument not yet used
local function finish_one(id, entry, status, failure, refund, names)
  local values = {}
  for _, name in ipairs(names) do
    values[#values + 1] = name
    values[#values + 1] = ARGV[nextv]
    nextv = nextv + 1
  end
  local jk = jkey(id)
  local st = redis.call('HGET', jk, 'status')
  if not st then drop_entry(entry); redis.call('DEL', skey(id)); return 'gone' end
  if FINAL[st] then drop_entry(entry); return st == 'cancelled' and 'cancelled' or 'already' end
  if status == 'done' then
    local rk = rkey(id)
    redis.call('DEL', rk)
    if #values > 0 then redis.call('HSET', rk, unpack(values)) end
    redis.call('EXPIRE', rk, ttl)
    redis.call('HSET', jk, 'progress', '1.0')
  end
  finish(id, status, failure, now, entry, true, false, refund)
  return 'ok'
end
local verdicts = {}
for i, j in ipairs(a.jobs) do
  local names = {}
  for k = 6, #j do names[#names + 1] = j[k] end
  verdicts[i] = finish_one(j[1], j[2], j[3], j[4], j[5] == '1', names)
end
local recorded = false
for _, v in ipairs(verdicts) do recorded = recorded or v == 'ok' end
if recorded and a.seconds ~= '' then
  record_duration(tonumber(a.seconds), tonumber(a.alpha), a.stats_ttl)
end
return cjson.encode(verdicts)
"""
)

# ARGV: prefix, job_id, owner_key, now
CANCEL = (
    _PRELUDE
    + """
local id, owner_key, now = ARGV[2], ARGV[3], ARGV[4]
local jk = jkey(id)
local f = redis.call('HMGET', jk, 'status', 'owner_key', 'entry')
if not f[1] then return 'missing' end
if f[2] ~= owner_key then return 'denied' end
if FINAL[f[1]] then return 'final' end
if f[1] == 'queued' then
  finish(id, 'cancelled', 'cancelled', now, f[3], false, false, true)
  return 'cancelled'
end
-- running: the worker keeps its stream entry; its complete() sees 'cancelled' and
-- discards the result. The user's slot is free at once and the selfie goes now.
redis.call('HSET', jk, 'status', 'cancelled', 'failure', 'cancelled', 'finished_at', now)
redis.call('DEL', skey(id))
free_slot(id, owner_key)
return 'cancelled_running'
"""
)

# ARGV: prefix, bot, entry_id, job_id, outcome status, consumer, now.  One-shot readers
# (`avatarbot submit --wait`, tests): claim and confirm in one step (at most once). A live
# delivery lease held by another consumer wins: 0, and the entry is left for its holder.
MARK_DELIVERED = (
    _PRELUDE
    + """
local stream, entry, id = out_key(ARGV[2]), ARGV[3], ARGV[4]
local jk = jkey(id)
local f = redis.call('HMGET', jk, 'status', 'delivered', 'delivering', 'lease_until')
if f[1] and f[2] ~= '1' and f[1] == ARGV[5] and f[3] and f[3] ~= ARGV[6]
   and tonumber(f[4] or '0') > tonumber(ARGV[7]) then
  return 0
end
redis.call('XACK', stream, DELIVERY_GROUP, entry)
redis.call('XDEL', stream, entry)
if not f[1] or f[2] == '1' or f[1] ~= ARGV[5] then return 0 end
redis.call('HSET', jk, 'delivered', '1')
redis.call('HDEL', jk, 'delivering', 'lease_until')
return 1
"""
)

# ARGV: prefix, bot, entry_id, job_id, outcome status, consumer, now, lease_s.
# Take (or renew) the lease to deliver one outcome: 'ok' when `consumer` holds it until
# now + lease_s; 'held' when another consumer's lease is still live (the entry is left
# alone); 'done' when there is nothing to deliver any more (delivered, vanished, or the
# job moved on): the entry is acknowledged and deleted.
CLAIM_DELIVERY = (
    _PRELUDE
    + """
local stream, entry, id, consumer = out_key(ARGV[2]), ARGV[3], ARGV[4], ARGV[6]
local now, lease = tonumber(ARGV[7]), tonumber(ARGV[8])
local jk = jkey(id)
local f = redis.call('HMGET', jk, 'status', 'delivered', 'delivering', 'lease_until')
if not f[1] or f[2] == '1' or f[1] ~= ARGV[5] then
  redis.call('XACK', stream, DELIVERY_GROUP, entry)
  redis.call('XDEL', stream, entry)
  return 'done'
end
if f[3] and f[3] ~= consumer and tonumber(f[4] or '0') > now then return 'held' end
redis.call('HSET', jk, 'delivering', consumer, 'lease_until', tostring(now + lease))
return 'ok'
"""
)

# ARGV: prefix, bot, entry_id, job_id, outcome status, delivered ('1' sent | '0' given up).
# End a delivery: acknowledge and delete the entry, drop the lease and, when sent, mark
# the job delivered. Returns 1 when this call marked it, 0 when it already was (a
# duplicate send happened: the lease had lapsed and another consumer sent it too), the
# job vanished or moved on, or the delivery was given up.
CONFIRM_DELIVERY = (
    _PRELUDE
    + """
local stream, entry, id = out_key(ARGV[2]), ARGV[3], ARGV[4]
local jk = jkey(id)
local f = redis.call('HMGET', jk, 'status', 'delivered')
redis.call('XACK', stream, DELIVERY_GROUP, entry)
redis.call('XDEL', stream, entry)
if not f[1] then return 0 end
redis.call('HDEL', jk, 'delivering', 'lease_until')
if f[2] == '1' or f[1] ~= ARGV[5] or ARGV[6] ~= '1' then return 0 end
redis.call('HSET', jk, 'delivered', '1')
return 1
"""
)

# ARGV: prefix, bot, consumer, now, lease_s ('' = take no lease), mode, then by mode:
#   'read'  count, since ('>' new entries, '0' this consumer's pending ones), no blocking;
#   'claim' count, min_idle_ms, cursor (XAUTOCLAIM: entries left by a dead bot consumer);
#   'given' entry_id, job_id, status, failure quadruples (read by a blocking XREADGROUP).
# Reads a bot's outcomes and everything needed to deliver them in one round trip.
# Outcomes with nothing left to deliver (the job vanished, was delivered or moved on) are
# acknowledged and deleted here. With lease_s, each outcome returned is leased to
# `consumer` until now + lease_s (as CLAIM_DELIVERY does); one whose lease another
# consumer holds is left alone and not returned.
# Returns {next cursor ('' unless 'claim'), entries seen, then per outcome a JSON header
# [entry, outcome fields, job hash, the result hash's field names (none unless the job is
# done)] followed by that many items: the result hash's values (binary-safe)}.
READ_OUTCOMES = (
    _PRELUDE
    + """
local stream, consumer, now = out_key(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local lease, mode = tonumber(ARGV[5]), ARGV[6]
local out, seen, cursor = {}, 0, ''
local function take(entry, outcome)
  seen = seen + 1
  local id = outcome and outcome.job_id
  local job = id and hash_obj(redis.call('HGETALL', jkey(id)))
  if not job or not job.status or job.delivered == '1' or job.status ~= outcome.status then
    redis.call('XACK', stream, DELIVERY_GROUP, entry)
    redis.call('XDEL', stream, entry)
    return
  end
  if lease then
    if job.delivering and job.delivering ~= consumer
       and tonumber(job.lease_until or '0') > now then
      return  -- another bot process is delivering it right now
    end
    job.delivering, job.lease_until = consumer, tostring(now + lease)
    redis.call('HSET', jkey(id), 'delivering', consumer, 'lease_until', job.lease_until)
  end
  local flat = (job.status == 'done') and redis.call('HGETALL', rkey(id)) or {}
  local names = {}
  for i = 1, #flat, 2 do names[#names + 1] = flat[i] end
  out[#out + 1] = cjson.encode({entry, outcome, job_record(job), names})
  for i = 2, #flat, 2 do out[#out + 1] = flat[i] end
end
local entries = {}
if mode == 'read' then
  local r = redis.call('XREADGROUP', 'GROUP', DELIVERY_GROUP, consumer, 'COUNT', ARGV[7],
                       'STREAMS', stream, ARGV[8])
  if r then entries = r[1][2] end
elseif mode == 'claim' then
  local r = redis.call('XAUTOCLAIM', stream, DELIVERY_GROUP, consumer, ARGV[8], ARGV[9],
                       'COUNT', ARGV[7])
  cursor, entries = r[1], r[2]
end
for _, e in ipairs(entries) do
  -- a pending entry deleted meanwhile comes without fields (Redis 6.2's XAUTOCLAIM even
  -- without an id): acknowledge it so it leaves the pending list
  if e then take(e[1], e[2] and hash_obj(e[2])) end
end
if mode == 'given' then
  for i = 7, #ARGV, 4 do
    local outcome = {job_id = ARGV[i + 1], status = ARGV[i + 2]}
    if ARGV[i + 3] ~= '' then outcome.failure = ARGV[i + 3] end
    take(ARGV[i], outcome)
  end
end
table.insert(out, 1, seen)
table.insert(out, 1, cursor)
return out
"""
)

# ARGV: prefix, job_id, fraction
SET_PROGRESS = (
    _PRELUDE
    + """
local jk = jkey(ARGV[2])
if redis.call('HGET', jk, 'status') ~= 'running' then return 0 end
redis.call('HSET', jk, 'progress', ARGV[3])
return 1
"""
)

# ARGV: prefix, seconds, alpha, ttl_s
RECORD_DURATION = (
    _PRELUDE
    + """
return tostring(record_duration(tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]))
"""
)

# ARGV: prefix, owner_key.  Deletes every key about one user; returns counts.
FORGET = (
    _PRELUDE
    + """
local owner_key = ARGV[2]
local index = P .. 'user:' .. owner_key
local jobs, selfies, results, queued, running, outcomes, dead = 0, 0, 0, 0, 0, 0, 0
for _, id in ipairs(redis.call('SMEMBERS', index)) do
  local jk = jkey(id)
  local f = redis.call('HMGET', jk, 'status', 'entry', 'bot', 'outcome_entry', 'dead_entry')
  if f[1] == 'queued' then drop_entry(f[2]); queued = queued + 1 end
  -- running: the worker's complete() finds the job gone, acknowledges and discards.
  if f[1] == 'running' then running = running + 1 end
  if f[3] and f[4] then
    local ok = out_key(f[3])
    redis.call('XACK', ok, DELIVERY_GROUP, f[4])
    outcomes = outcomes + redis.call('XDEL', ok, f[4])
  end
  if f[5] then dead = dead + redis.call('XDEL', DEAD, f[5]) end
  redis.call('ZREM', ACTIVE, id)
  jobs = jobs + redis.call('DEL', jk)
  selfies = selfies + redis.call('DEL', skey(id))
  results = results + redis.call('DEL', rkey(id))
end
redis.call('DEL', index, slot_key(owner_key))
return {jobs, selfies, results, queued, running, outcomes, dead}
"""
)

# ARGV: prefix, now, job_ttl_s, dead entry ids...  Requeues dead jobs whose selfie is
# still there; drops dead letters that can no longer be retried. Returns {requeued, dropped}.
RETRY_DEAD = (
    _PRELUDE
    + """
local now, job_ttl = ARGV[2], ARGV[3]
local requeued, dropped = 0, 0
for i = 4, #ARGV do
  local dead_entry = ARGV[i]
  local e = redis.call('XRANGE', DEAD, dead_entry, dead_entry)
  if e[1] then
    local fv, id = e[1][2], nil
    for j = 1, #fv, 2 do if fv[j] == 'job_id' then id = fv[j + 1] end end
    local jk = id and jkey(id)
    local f = jk and redis.call('HMGET', jk, 'status', 'owner_key', 'bot', 'outcome_entry')
    if f and f[1] == 'dead' and redis.call('EXISTS', skey(id)) == 1 then
      if f[3] and f[4] then  -- the stale 'dead' outcome must not be delivered after this
        redis.call('XACK', out_key(f[3]), DELIVERY_GROUP, f[4])
        redis.call('XDEL', out_key(f[3]), f[4])
      end
      local entry = redis.call('XADD', JOBS, '*', 'job_id', id)
      redis.call('HSET', jk, 'status', 'queued', 'attempts', '0', 'progress', '0.0',
                 'delivered', '0', 'entry', entry)
      redis.call('HDEL', jk, 'failure', 'finished_at', 'started_at', 'outcome_entry',
                 'dead_entry', 'worker', 'delivering', 'lease_until')
      redis.call('EXPIRE', jk, job_ttl)
      local ms, seq = string.match(entry, '^(%d+)-(%d+)$')
      redis.call('ZADD', ACTIVE, tonumber(ms) * 1024 + math.min(tonumber(seq), 1023), id)
      redis.call('EXPIRE', ACTIVE, job_ttl)
      redis.call('SET', slot_key(f[2]), id, 'NX', 'EX', job_ttl)
      requeued = requeued + 1
    else
      dropped = dropped + 1
    end
    redis.call('XDEL', DEAD, dead_entry)
  end
end
return {requeued, dropped}
"""
)

# ARGV: prefix.  Deletes every dead letter and the selfies kept for retrying them.
PURGE_DEAD = (
    _PRELUDE
    + """
local n = 0
for _, e in ipairs(redis.call('XRANGE', DEAD, '-', '+')) do
  local fv = e[2]
  for j = 1, #fv, 2 do
    if fv[j] == 'job_id' and redis.call('HGET', jkey(fv[j + 1]), 'status') == 'dead' then
      redis.call('DEL', skey(fv[j + 1]))
      redis.call('HDEL', jkey(fv[j + 1]), 'dead_entry')
    end
  end
  redis.call('XDEL', DEAD, e[1])
  n = n + 1
end
return n
"""
)

# ARGV: prefix, now, dead_min_id, limit.  Housekeeping on the reclaim timer: trims old
# dead letters, prunes the active index of vanished or finished jobs and the worker
# registry of expired workers. Returns {dead_trimmed, active_pruned, workers_pruned}.
MAINTAIN = (
    _PRELUDE
    + """
local trimmed = 0
if redis.call('EXISTS', DEAD) == 1 then
  trimmed = redis.call('XTRIM', DEAD, 'MINID', ARGV[3])
end
local pruned = 0
for _, id in ipairs(redis.call('ZRANGE', ACTIVE, 0, tonumber(ARGV[4]) - 1)) do
  local st = redis.call('HGET', jkey(id), 'status')
  if st ~= 'queued' and st ~= 'running' then
    redis.call('ZREM', ACTIVE, id)
    pruned = pruned + 1
  end
end
local workers = redis.call('ZREMRANGEBYSCORE', P .. 'workers', '-inf', ARGV[2])
return {trimmed, pruned, workers}
"""
)
