-- claim.lua: read up to `count` new entries for a worker (XREADGROUP >, no blocking) and
-- start their jobs, in one round trip (WorkerQueue.claim). The worker blocks (a plain
-- XREADGROUP BLOCK, then start.lua) only when this came back empty.
-- KEYS: [1] jobs stream, [2] active_jobs, [3] stats
-- ARGV: [1] key prefix, [2] now, [3] consumer, [4] count, [5] the stuck bound's terms
--       (JSON: factor, min_ms, max_ms, default_s)
-- Derives from the prefix: job:{id} and selfie:{id} of each entry read, and (ending a job
-- whose selfie expired) the owner's slot and results stream named in its hash.
-- Returns start_one's two items per entry read; none when nothing is waiting.
Q.prefix, Q.jobs, Q.active, Q.stats = ARGV[1], KEYS[1], KEYS[2], KEYS[3]
Q.stuck = cjson.decode(ARGV[5])
local now, consumer = ARGV[2], ARGV[3]
local out = {}
local r = redis.call('XREADGROUP', 'GROUP', JOBS_GROUP, consumer, 'COUNT', ARGV[4],
                     'STREAMS', Q.jobs, '>')
if not r then return out end
for _, e in ipairs(r[1][2]) do
  local id = field(e[2], 'job_id')
  if id then
    start_one(out, e[1], id, job_key(id), selfie_key(id), now, consumer, 1)
  else
    drop_entry(e[1])
  end
end
note_stuck_bounds()
return out
