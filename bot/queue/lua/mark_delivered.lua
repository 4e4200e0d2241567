-- mark_delivered.lua: claim and confirm one outcome in one step, for one-shot readers
-- (DeliveryQueue.mark_delivered: `avatarbot submit --wait`, tests; at most once). A live
-- lease held by another consumer wins: the entry is left for its holder.
-- KEYS: [1] results:{bot}, [2] job:{id}
-- ARGV: [1] outcome entry id, [2] outcome status, [3] consumer, [4] now
-- Returns 1 when this call marked the job delivered, else 0.
local stream, jk, entry = KEYS[1], KEYS[2], ARGV[1]
local f = redis.call('HMGET', jk, 'status', 'delivered', 'delivering', 'lease_until')
if f[1] and f[2] ~= '1' and f[1] == ARGV[2] and f[3] and f[3] ~= ARGV[3]
   and tonumber(f[4] or '0') > tonumber(ARGV[4]) then
  return 0
end
redis.call('XACK', stream, DELIVERY_GROUP, entry)
redis.call('XDEL', stream, entry)
if not f[1] or f[2] == '1' or f[1] ~= ARGV[2] then return 0 end
redis.call('HSET', jk, 'delivered', '1')
redis.call('HDEL', jk, 'delivering', 'lease_until')
return 1
