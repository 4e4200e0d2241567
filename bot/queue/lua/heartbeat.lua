-- heartbeat.lua: reset the idle time of the entries a worker still holds, so they are not
-- reclaimed while it works on them (WorkerQueue.heartbeat). XCLAIM ... JUSTID to itself
-- does not count a delivery.
-- KEYS: [1] jobs stream
-- ARGV: [1] consumer, then entry ids
-- Returns the ids another consumer took (entries no longer pending were finished
-- meanwhile and are left out).
local jobs, consumer = KEYS[1], ARGV[1]
local mine, lost = {}, {}
for i = 2, #ARGV do
  local p = redis.call('XPENDING', jobs, JOBS_GROUP, ARGV[i], ARGV[i], 1)
  if p[1] then  -- not pending any more: finished meanwhile, neither ours nor lost
    if p[1][2] == consumer then mine[#mine + 1] = ARGV[i] else lost[#lost + 1] = ARGV[i] end
  end
end
if #mine > 0 then
  redis.call('XCLAIM', jobs, JOBS_GROUP, consumer, 0, unpack(mine), 'JUSTID')
end
return lost
