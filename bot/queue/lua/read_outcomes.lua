-- read_outcomes.lua: read a bot's outcomes and everything needed to deliver them in one
-- round trip (DeliveryQueue.read_outcomes). Outcomes with nothing left to deliver (the
-- job vanished, was delivered or moved on) are acknowledged and deleted here. With a
-- lease, each outcome returned is leased to `consumer` until now + lease (as
-- claim_delivery.lua does); one whose lease another consumer holds is left alone and not
-- returned.
-- KEYS: [1] results:{bot}
-- ARGV: [1] key prefix, [2] consumer, [3] now, [4] lease (s; '' = take no lease), [5] mode,
--       then by mode:
--   'read'  count, since ('>' new entries, '0' this consumer's pending ones), no blocking;
--   'claim' count, min_idle_ms, cursor (XAUTOCLAIM: entries left by a dead bot consumer);
--   'given' entry_id, job_id, status, failure quadruples (read by a blocking XREADGROUP).
-- Derives from the prefix: job:{id} and result:{id} of each outcome's job.
-- Returns {next cursor ('' unless 'claim'), entries seen, then per outcome a JSON header
-- [entry, outcome fields, job hash, the result hash's field names (none unless the job is
-- done)] followed by that many items: the result hash's values (binary-safe)}.
Q.prefix = ARGV[1]
local stream, consumer, now = KEYS[1], ARGV[2], tonumber(ARGV[3])
local lease, mode = tonumber(ARGV[4]), ARGV[5]
local out, seen, cursor = {}, 0, ''
local function take(entry, outcome)
  seen = seen + 1
  local id = outcome and outcome.job_id
  local jk = id and job_key(id)
  local job = id and hash_obj(redis.call('HGETALL', jk))
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
    redis.call('HSET', jk, 'delivering', consumer, 'lease_until', job.lease_until)
  end
  local flat = (job.status == 'done') and redis.call('HGETALL', result_key(id)) or {}
  local names = {}
  for i = 1, #flat, 2 do names[#names + 1] = flat[i] end
  out[#out + 1] = cjson.encode({entry, outcome, job_record(job), names})
  for i = 2, #flat, 2 do out[#out + 1] = flat[i] end
end
local entries = {}
if mode == 'read' then
  local r = redis.call('XREADGROUP', 'GROUP', DELIVERY_GROUP, consumer, 'COUNT', ARGV[6],
                       'STREAMS', stream, ARGV[7])
  if r then entries = r[1][2] end
elseif mode == 'claim' then
  local r = redis.call('XAUTOCLAIM', stream, DELIVERY_GROUP, consumer, ARGV[7], ARGV[8],
                       'COUNT', ARGV[6])
  cursor, entries = r[1], r[2]
end
for _, e in ipairs(entries) do
  -- a pending entry deleted meanwhile comes without fields (Redis 6.2's XAUTOCLAIM even
  -- without an id): acknowledge it so it leaves the pending list
  if e then take(e[1], e[2] and hash_obj(e[2])) end
end
if mode == 'given' then
  for i = 6, #ARGV, 4 do
    local outcome = {job_id = ARGV[i + 1], status = ARGV[i + 2]}
    if ARGV[i + 3] ~= '' then outcome.failure = ARGV[i + 3] end
    take(ARGV[i], outcome)
  end
end
table.insert(out, 1, seen)
table.insert(out, 1, cursor)
return out
