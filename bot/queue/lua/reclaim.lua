-- reclaim.lua: the net for a worker alive but stuck (WorkerQueue.reclaim, the idle
-- step): take over, for `consumer`, the entries of the jobs stream held longer than their
-- stuck bound (`stuck_ms` in their job's hash, set when it started; `min_idle_ms`, the
-- floor, for a job without one), scanning the pending list from `cursor`, each through
-- take_over (restarted, or dead-lettered above `max` deliveries). Nothing renews an
-- entry's idle time: it counts from the entry's last delivery.
-- KEYS: [1] jobs stream, [2] active_jobs, [3] dead-letter stream, [4] stats
-- ARGV: [1] key prefix, [2] now, [3] consumer, [4] min_idle_ms, [5] cursor ('0-0': from the
--       start), [6] count, [7] max deliveries, [8] the stuck bound's terms (JSON: factor,
--       min_ms, max_ms, default_s)
-- Derives from the prefix: job:{id} and selfie:{id} of each entry looked at or taken
-- over, and the owner's slot and results stream named in the hash of a job that ends here.
-- Returns {next cursor ('0-0' once the scan reached the end), take_over's items}.
Q.prefix, Q.jobs, Q.active, Q.dead, Q.stats = ARGV[1], KEYS[1], KEYS[2], KEYS[3], KEYS[4]
Q.stuck = cjson.decode(ARGV[8])
local now, consumer, floor = ARGV[2], ARGV[3], tonumber(ARGV[4])
local count, max = tonumber(ARGV[6]), tonumber(ARGV[7])
local SCAN = 100
local start = '-'
if ARGV[5] ~= '0-0' then start = '(' .. ARGV[5] end
local p = redis.call('XPENDING', Q.jobs, JOBS_GROUP, 'IDLE', floor, start, '+', SCAN)
local out, taken, cursor = {}, 0, '0-0'
for _, e in ipairs(p) do
  local entry, idle = e[1], tonumber(e[3])
  local row = redis.call('XRANGE', Q.jobs, entry, entry)
  local id = row[1] and field(row[1][2], 'job_id')
  local bound = floor
  if id then bound = tonumber(redis.call('HGET', job_key(id), 'stuck_ms') or '') or floor end
  if idle >= bound then
    local got = claim_entry(entry, consumer, bound)
    if got ~= nil then
      take_over(out, entry, got or nil, deliveries(entry), max, now, consumer)
      taken = taken + 1
    end
  end
  cursor = entry
  if taken >= count then break end
end
if taken < count and #p < SCAN then cursor = '0-0' end
note_stuck_bounds()
return {cursor, out}
