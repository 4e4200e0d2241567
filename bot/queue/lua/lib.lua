-- lib.lua: helpers shared by the queue's scripts. The loader (bot/queue/scripts.py) puts
-- two lines naming the consumer groups (JOBS_GROUP, DELIVERY_GROUP) and the jobs group's
-- hand-back consumer (HANDED_BACK), then this file, in front of every script. Nothing
-- here runs on its own or reads KEYS or ARGV.
--
-- Key names follow the key schema in docs/reliability.md. A script passes the keys it
-- knows up front as KEYS and sets the fields of Q its helpers use from them; the helpers
-- derive the keys of a job the script only learns about while it runs (an entry it read,
-- a field of a job hash) from Q.prefix, the key prefix ending in ':'.

-- Set by each script: prefix (ARGV), jobs (the jobs stream), active (the active_jobs
-- index), dead (the dead-letter stream), and, in the scripts that start jobs, stats (the
-- stats hash) and stuck (the stuck bound's terms: factor, min_ms, max_ms, default_s):
-- those its helpers use. start_one lists the jobs it started in Q.started.
local Q = {started = {}}

local function job_key(id) return Q.prefix .. 'job:' .. id end
local function selfie_key(id) return Q.prefix .. 'selfie:' .. id end
local function result_key(id) return Q.prefix .. 'result:' .. id end
local function slot_key(owner_key) return Q.prefix .. 'active:' .. owner_key end
local function results_key(bot) return Q.prefix .. 'results:' .. bot end
local function alive_key(consumer) return Q.prefix .. 'alive:' .. consumer end

local FINAL = {done=true, failed=true, cancelled=true, dead=true}

-- A flat name/value list (HGETALL, a stream entry's fields) as a table, so cjson encodes
-- it as one JSON object.
local function hash_obj(flat)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

-- The queue's own fields of a job hash: scripts read them, clients have no use for them,
-- so job records sent back leave them out (less to encode and parse).
local BOOKKEEPING = {owner_key=true, bot=true, quota_key=true, entry=true,
                     outcome_entry=true, dead_entry=true, worker=true, delivering=true,
                     lease_until=true, stuck_ms=true}

local function job_record(job)
  local t = {}
  for k, v in pairs(job) do if not BOOKKEEPING[k] then t[k] = v end end
  return t
end

local function field(flat, name)
  if flat then
    for i = 1, #flat, 2 do if flat[i] == name then return flat[i + 1] end end
  end
  return nil
end

-- Acknowledge and delete an entry of the jobs stream (Q.jobs).
local function drop_entry(entry)
  if entry and entry ~= '' then
    redis.call('XACK', Q.jobs, JOBS_GROUP, entry)
    redis.call('XDEL', Q.jobs, entry)
  end
end

-- Free the owner's one-job slot (if it still names this job) and drop the job from the
-- active index (Q.active).
local function free_slot(id, owner_key)
  if owner_key then
    local sk = slot_key(owner_key)
    if redis.call('GET', sk) == id then redis.call('DEL', sk) end
  end
  redis.call('ZREM', Q.active, id)
end

-- Add the job's outcome to its bot's results stream (creating the stream's delivery group
-- at id 0 if the stream is new) and note the entry in the job hash `jk`.
local function publish(id, jk, bot, status, failure)
  local ok = results_key(bot)
  if redis.call('EXISTS', ok) == 0 then
    redis.call('XGROUP', 'CREATE', ok, DELIVERY_GROUP, '0', 'MKSTREAM')
  end
  local oid
  if failure ~= '' then
    oid = redis.call('XADD', ok, '*', 'job_id', id, 'status', status, 'failure', failure)
  else
    oid = redis.call('XADD', ok, '*', 'job_id', id, 'status', status)
  end
  redis.call('HSET', jk, 'outcome_entry', oid)
  return oid
end

-- Move job `id` (hash `jk`, which exists; selfie `sk`) to a final state: the one way a job
-- ends. Acknowledges and deletes its stream entry, frees the owner's slot, drops it from
-- the active index, deletes the selfie (unless keep_selfie), refunds the daily quota (if
-- refund) and publishes the outcome for the delivering bot (if announce). Derives the
-- owner's slot and the bot's results stream from the hash's fields.
local function finish(id, jk, sk, status, failure, now, entry, announce, keep_selfie, refund)
  local f = redis.call('HMGET', jk, 'owner_key', 'bot', 'quota_key')
  drop_entry(entry)
  redis.call('HSET', jk, 'status', status, 'finished_at', now)
  if failure ~= '' then redis.call('HSET', jk, 'failure', failure) end
  if not keep_selfie then redis.call('DEL', sk) end
  free_slot(id, f[1])
  if refund and f[3] then
    if tonumber(redis.call('GET', f[3]) or '0') > 0 then redis.call('DECR', f[3]) end
  end
  if announce and f[2] then publish(id, jk, f[2], status, failure) end
end

-- Hand job `id` (hash `jk`, selfie `sk`; delivered as stream entry `entry`, for the n-th
-- time) to `consumer`. Appends two reply items to `out`: a JSON header [entry, verdict, id,
-- n, job hash as an object (verdict 'ok' only)] and the selfie ('' unless 'ok'). Two flat
-- items per job instead of a nested row keep the worker's reply parsing cheap.
local function start_one(out, entry, id, jk, sk, now, consumer, n)
  local st = redis.call('HGET', jk, 'status')
  local verdict, job, selfie = 'ok', nil, ''
  if not st then
    drop_entry(entry); verdict = 'gone'
  elseif FINAL[st] then
    drop_entry(entry); verdict = 'skip'
  else
    selfie = redis.call('GET', sk)
    if not selfie then
      finish(id, jk, sk, 'failed', 'selfie_expired', now, entry, true, false, true)
      verdict, selfie = 'expired', ''
    else
      redis.call('HSET', jk, 'status', 'running', 'started_at', now, 'worker', consumer,
                 'progress', '0.0')
      redis.call('HINCRBY', jk, 'attempts', 1)
      job = job_record(hash_obj(redis.call('HGETALL', jk)))
      Q.started[#Q.started + 1] = {jk, job.style_id}
    end
  end
  out[#out + 1] = cjson.encode({entry, verdict, id, n, job})
  out[#out + 1] = selfie
end

-- Take over a pending entry of the jobs stream that another worker held, now claimed by
-- `consumer` (its n-th delivery): start its job again, or, above `max` deliveries,
-- dead-letter it (a dead letter in Q.dead, status 'dead', its user told; the selfie stays
-- until its own TTL so an operator can retry the job). Appends start_one's two items, or
-- a header with the verdict 'dead' and ''. Every hand-over of a job goes through here,
-- whatever decided it.
local function take_over(out, entry, id, n, max, now, consumer)
  if not id then drop_entry(entry); return end
  local jk, sk = job_key(id), selfie_key(id)
  if n <= max then start_one(out, entry, id, jk, sk, now, consumer, n); return end
  local st = redis.call('HGET', jk, 'status')
  if not st or FINAL[st] then drop_entry(entry); return end
  local dead = redis.call('XADD', Q.dead, '*', 'job_id', id, 'entry', entry,
                          'deliveries', n, 'dead_at', now)
  redis.call('HSET', jk, 'dead_entry', dead)
  finish(id, jk, sk, 'dead', 'dead_letter', now, entry, true, true, true)
  out[#out + 1] = cjson.encode({entry, 'dead', id, n})
  out[#out + 1] = ''
end

-- Fold `x` into the moving average in field `name` of `stats`; returns the new average.
local function fold(stats, name, x, alpha)
  local avg = tonumber(redis.call('HGET', stats, name) or '')
  if avg then avg = alpha * x + (1 - alpha) * avg else avg = x end
  redis.call('HSET', stats, name, tostring(avg))
  return avg
end

-- Add one job's duration (seconds) to the moving average in `stats` used for ETAs, and,
-- for each style named, to that style's average (the stuck bounds); returns the first.
local function record_duration(stats, x, alpha, ttl, styles)
  local avg = fold(stats, 'avg_job_s', x, alpha)
  for _, style in ipairs(styles or {}) do fold(stats, 'avg_s:' .. style, x, alpha) end
  redis.call('HINCRBY', stats, 'samples', 1)
  redis.call('EXPIRE', stats, ttl)
  return avg
end

-- Put a job's entry in the active index (Q.active) in stream order: the score keeps
-- entries of the same millisecond in sequence.
local function index_active(id, entry, ttl)
  local ms, seq = string.match(entry, '^(%d+)-(%d+)$')
  redis.call('ZADD', Q.active, tonumber(ms) * 1024 + math.min(tonumber(seq), 1023), id)
  redis.call('EXPIRE', Q.active, ttl)
end

-- --- liveness and stuck bounds (docs/reliability.md, "When a worker stops") ---

-- The expected seconds of one job of `style`: the style's moving average, else every
-- style's, else the configured default.
local function expected_s(style)
  local f = redis.call('HMGET', Q.stats, 'avg_s:' .. (style or ''), 'avg_job_s')
  return tonumber(f[1] or '') or tonumber(f[2] or '') or tonumber(Q.stuck.default_s)
end

-- Give every job this script call started (Q.started) its stuck bound, `stuck_ms` in its
-- hash: factor times the expected time of the whole batch (a worker runs a batch's groups
-- one after another), within [min_ms, max_ms]. Call once, after the jobs are started.
local function note_stuck_bounds()
  if #Q.started == 0 then return end
  local total = 0
  for _, s in ipairs(Q.started) do total = total + expected_s(s[2]) end
  local t = Q.stuck
  local bound = math.max(t.min_ms, math.min(t.max_ms, t.factor * total * 1000))
  for _, s in ipairs(Q.started) do
    redis.call('HSET', s[1], 'stuck_ms', string.format('%d', bound))
  end
end

-- Claim entry `entry` of the jobs stream for `consumer` if it has been idle at least
-- `min_idle` ms (a delivery counted); returns its job id, or nil when it was not claimed.
-- An entry deleted meanwhile (Redis 6.2 returns it as nil and keeps it pending) is
-- dropped.
local function claim_entry(entry, consumer, min_idle)
  local r = redis.call('XCLAIM', Q.jobs, JOBS_GROUP, consumer, min_idle, entry)
  if #r == 0 then return nil end
  if not r[1] then drop_entry(entry); return nil end
  return field(r[1][2], 'job_id') or false
end

-- The current delivery count of a pending entry (1 if it is not pending).
local function deliveries(entry)
  local p = redis.call('XPENDING', Q.jobs, JOBS_GROUP, entry, entry, 1)
  return (p[1] and tonumber(p[1][4])) or 1
end

-- Server time in ms.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The consumers of the jobs group holding entries that the living should take at once:
-- HANDED_BACK always; with `by_liveness`, every other one but `me` whose liveness record
-- lapsed, judged by `me` only when it can tell the other had time to renew its record and
-- did not: `me`'s own record lives and, if it lapsed once and was created again (`me` was
-- frozen, or cut off from Redis), has lived since for `judge_after_ms`; and Redis has been
-- up that long (records may have expired while it was down). A record holds two server
-- times 'first:since': when its worker first created it, and when this one was created.
local function lapsed_consumers(me, judge_after_ms, by_liveness)
  local s = redis.call('XPENDING', Q.jobs, JOBS_GROUP)
  local out = {}
  if not s[4] then return out end
  local judge = false
  local record = by_liveness and redis.call('GET', alive_key(me))
  if record then
    local first, since = string.match(record, '^(%d+):(%d+)$')
    local info = redis.call('INFO', 'server')
    local uptime_ms = tonumber(string.match(info, 'uptime_in_seconds:(%d+)') or '0') * 1000
    judge = since ~= nil and uptime_ms >= judge_after_ms
      and (first == since or now_ms() - tonumber(since) >= judge_after_ms)
  end
  for _, c in ipairs(s[4]) do
    local name = c[1]
    if name == HANDED_BACK then
      out[#out + 1] = name
    elseif judge and name ~= me and redis.call('EXISTS', alive_key(name)) == 0 then
      out[#out + 1] = name
    end
  end
  return out
end
