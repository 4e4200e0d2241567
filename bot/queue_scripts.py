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

-- Hand job `id` (delivered as stream entry `entry`) to `consumer`.
local function start_one(entry, id, now, consumer)
  local jk = jkey(id)
  local st = redis.call('HGET', jk, 'status')
  if not st then drop_entry(entry); return {{entry, 'gone', id}} end
  if FINAL[st] then drop_entry(entry); return {{entry, 'skip', id}} end
  local selfie = redis.call('GET', skey(id))
  if not selfie then
    finish(id, 'failed', 'selfie_expired', now, entry, true, false, true)
    return {{entry, 'expired', id}}
  end
  redis.call('HSET', jk, 'status', 'running', 'started_at', now, 'worker', consumer,
             'progress', '0.0')
  redis.call('HINCRBY', jk, 'attempts', 1)
  return {{entry, 'ok', id, cjson.encode(redis.call('HGETALL', jk)), selfie}}
end
"""

# ARGV: prefix, job_id, now, queue_cap, daily_quota, quota_ttl_s, selfie_ttl_s, job_ttl_s,
#       index_ttl_s, owner_key, bot, quota_key, selfie, then job fields as name/value pairs.
ENQUEUE = (
    _PRELUDE
    + """
local id, now = ARGV[2], tonumber(ARGV[3])
local cap, quota = tonumber(ARGV[4]), tonumber(ARGV[5])
local owner_key, bot, quota_key = ARGV[10], ARGV[11], ARGV[12]
local slot = slot_key(owner_key)
local current = redis.call('GET', slot)
if current then
  local st = redis.call('HGET', jkey(current), 'status')
  if st == 'queued' or st == 'running' then return {'busy', current} end
end
local depth = redis.call('ZCARD', ACTIVE)
if depth >= cap then return {'full', depth} end
local used = tonumber(redis.call('GET', quota_key) or '0')
if used >= quota then return {'quota', used} end
redis.call('INCR', quota_key)
if redis.call('TTL', quota_key) < 0 then redis.call('EXPIRE', quota_key, ARGV[6]) end

local jk = jkey(id)
local fields = {}
for i = 14, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', jk, unpack(fields))
local entry = redis.call('XADD', JOBS, '*', 'job_id', id)
redis.call('HSET', jk, 'owner_key', owner_key, 'bot', bot, 'quota_key', quota_key,
           'entry', entry)
redis.call('EXPIRE', jk, ARGV[8])
redis.call('SET', skey(id), ARGV[13], 'EX', ARGV[7])
redis.call('SET', slot, id, 'EX', ARGV[8])
local ms, seq = string.match(entry, '^(%d+)-(%d+)$')
redis.call('ZADD', ACTIVE, tonumber(ms) * 1024 + math.min(tonumber(seq), 1023), id)
redis.call('EXPIRE', ACTIVE, ARGV[8])
local index = P .. 'user:' .. owner_key
redis.call('SADD', index, id)
redis.call('EXPIRE', index, ARGV[9])
local rank = redis.call('ZRANK', ACTIVE, id)
local avg = redis.call('HGET', P .. 'stats', 'avg_job_s') or ''
local workers = redis.call('ZCOUNT', P .. 'workers', now, '+inf')
return {'ok', entry, rank, avg, workers}
"""
)

# ARGV: prefix, now, consumer, then entry_id/job_id pairs (from XREADGROUP).
START = (
    _PRELUDE
    + """
local now, consumer = ARGV[2], ARGV[3]
local out = {}
for i = 4, #ARGV, 2 do out[#out + 1] = start_one(ARGV[i], ARGV[i + 1], now, consumer) end
return out
"""
)

# ARGV: prefix, now, consumer, min_idle_ms, cursor, count, max_deliveries
RECLAIM = (
    _PRELUDE
    + """
local now, consumer, max = ARGV[2], ARGV[3], tonumber(ARGV[7])
local r = redis.call('XAUTOCLAIM', JOBS, JOBS_GROUP, consumer, ARGV[4], ARGV[5],
                     'COUNT', ARGV[6])
local out = {}
for _, e in ipairs(r[2]) do
  if e then  -- Redis 6.2 returns deleted entries as nil; 7.x drops them from the PEL
    local entry, fv, id = e[1], e[2], nil
    for j = 1, #fv, 2 do if fv[j] == 'job_id' then id = fv[j + 1] end end
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
        out[#out + 1] = {entry, 'dead', id, n}
      else
        drop_entry(entry)
      end
    else
      local started = start_one(entry, id, now, consumer)
      started[#started + 1] = n
      out[#out + 1] = started
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

# ARGV: prefix, now, job_id, entry_id, status ('done'|'failed'), failure, result_ttl_s,
#       refund ('1'|'0'), then result fields as name/value pairs (done only).
FINISH = (
    _PRELUDE
    + """
local now, id, entry, status, failure = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local jk = jkey(id)
local st = redis.call('HGET', jk, 'status')
if not st then drop_entry(entry); redis.call('DEL', skey(id)); return 'gone' end
if FINAL[st] then drop_entry(entry); return st == 'cancelled' and 'cancelled' or 'already' end
if status == 'done' then
  local fields = {}
  for i = 9, #ARGV do fields[#fields + 1] = ARGV[i] end
  local rk = rkey(id)
  redis.call('DEL', rk)
  redis.call('HSET', rk, unpack(fields))
  redis.call('EXPIRE', rk, ARGV[7])
  redis.call('HSET', jk, 'progress', '1.0')
end
finish(id, status, failure, now, entry, true, false, ARGV[8] == '1')
return 'ok'
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

# ARGV: prefix, job ids...  Per job: its hash as one JSON array of names and values ('' when
# gone; one reply item instead of ~40 keeps the bots' reads cheap), then its result hash
# (binary-safe, empty unless the job is done).
FETCH_JOBS = (
    _PRELUDE
    + """
local out = {}
for i = 2, #ARGV do
  local flat = redis.call('HGETALL', jkey(ARGV[i]))
  out[#out + 1] = (#flat > 0) and cjson.encode(flat) or ''
  out[#out + 1] = redis.call('HGETALL', rkey(ARGV[i]))
end
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
local k = P .. 'stats'
local x, alpha = tonumber(ARGV[2]), tonumber(ARGV[3])
local avg = tonumber(redis.call('HGET', k, 'avg_job_s') or '')
if avg then avg = alpha * x + (1 - alpha) * avg else avg = x end
redis.call('HSET', k, 'avg_job_s', tostring(avg))
redis.call('HINCRBY', k, 'samples', 1)
redis.call('EXPIRE', k, ARGV[4])
return tostring(avg)
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
