-- reclaim_dead.lua: take over, for `consumer`, at once, the pending entries of the
-- workers that stopped (WorkerQueue.reclaim, the by-consumer step): those of every
-- consumer lapsed_consumers names (the hand-back consumer; with liveness on, each worker
-- whose liveness record lapsed), fewest deliveries first (a job that already killed a
-- worker goes after the innocent ones it came with), then in queue order; each through
-- take_over (restarted, or dead-lettered above `max` deliveries). A consumer left with
-- nothing pending is deleted from the group.
-- KEYS: [1] jobs stream, [2] active_jobs, [3] dead-letter stream, [4] stats
-- ARGV: [1] key prefix, [2] now, [3] consumer, [4] count, [5] max deliveries,
--       [6] how long (ms) `consumer` gives the others to renew their records after Redis
--       started or its own record lapsed, [7] '1' to judge workers by their liveness
--       records, [8] the stuck bound's terms (JSON: factor, min_ms, max_ms, default_s)
-- Derives from the prefix: alive:{consumer} of the asking consumer and of each consumer
-- holding entries, job:{id} and selfie:{id} of each entry taken over, and the owner's
-- slot and results stream named in the hash of a job that ends here.
-- Returns take_over's items.
Q.prefix, Q.jobs, Q.active, Q.dead, Q.stats = ARGV[1], KEYS[1], KEYS[2], KEYS[3], KEYS[4]
Q.stuck = cjson.decode(ARGV[8])
local now, consumer = ARGV[2], ARGV[3]
local count, max = tonumber(ARGV[4]), tonumber(ARGV[5])
local gone = lapsed_consumers(consumer, tonumber(ARGV[6]), ARGV[7] == '1')
local candidates = {}
for _, name in ipairs(gone) do
  for _, e in ipairs(redis.call('XPENDING', Q.jobs, JOBS_GROUP, '-', '+', 100, name)) do
    candidates[#candidates + 1] = {e[1], tonumber(e[4])}
  end
end
table.sort(candidates, function(a, b)
  if a[2] ~= b[2] then return a[2] < b[2] end
  local am, as = string.match(a[1], '^(%d+)-(%d+)$')
  local bm, bs = string.match(b[1], '^(%d+)-(%d+)$')
  if am ~= bm then return tonumber(am) < tonumber(bm) end
  return tonumber(as) < tonumber(bs)
end)
local out, taken = {}, 0
for _, c in ipairs(candidates) do
  if taken >= count then break end
  local got = claim_entry(c[1], consumer, 0)
  if got ~= nil then
    take_over(out, c[1], got or nil, deliveries(c[1]), max, now, consumer)
    taken = taken + 1
  end
end
for _, name in ipairs(gone) do
  if #redis.call('XPENDING', Q.jobs, JOBS_GROUP, '-', '+', 1, name) == 0 then
    redis.call('XGROUP', 'DELCONSUMER', Q.jobs, JOBS_GROUP, name)
  end
end
note_stuck_bounds()
return out
