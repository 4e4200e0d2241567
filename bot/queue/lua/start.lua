-- start.lua: start the jobs of entries a worker read with a blocking XREADGROUP
-- (WorkerQueue.claim, when claim.lua found nothing waiting).
-- KEYS: [1] jobs stream, [2] active_jobs, [3] stats, then per entry: job:{id}, selfie:{id}
-- ARGV: [1] key prefix, [2] now, [3] consumer, [4] the stuck bound's terms (JSON: factor,
--       min_ms, max_ms, default_s), then per entry: entry id, job id
-- Derives from the prefix: the owner's slot and results stream named in the hash of a job
-- whose selfie expired (it ends here).
-- Returns start_one's two items per entry.
Q.prefix, Q.jobs, Q.active, Q.stats = ARGV[1], KEYS[1], KEYS[2], KEYS[3]
Q.stuck = cjson.decode(ARGV[4])
local now, consumer = ARGV[2], ARGV[3]
local out = {}
for i = 5, #ARGV, 2 do
  local k = 4 + (i - 5)  -- the entry's job:{id}, then selfie:{id}
  start_one(out, ARGV[i], ARGV[i + 1], KEYS[k], KEYS[k + 1], now, consumer, 1)
end
note_stuck_bounds()
return out
