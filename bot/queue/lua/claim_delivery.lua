-- claim_delivery.lua: take (or renew) the lease to deliver one outcome
-- (DeliveryQueue.claim_delivery; the lease protocol is in docs/reliability.md).
-- KEYS: [1] results:{bot}, [2] job:{id}
-- ARGV: [1] outcome entry id, [2] outcome status, [3] consumer, [4] now, [5] lease (s)
-- Returns 'ok' when `consumer` holds the lease until now + lease; 'held' when another
-- consumer's lease is still live (the entry is left alone); 'done' when there is nothing
-- to deliver any more (delivered, vanished, or the job moved on): the entry is
-- acknowledged and deleted.
local stream, jk, entry, consumer = KEYS[1], KEYS[2], ARGV[1], ARGV[3]
local now, lease = tonumber(ARGV[4]), tonumber(ARGV[5])
local f = redis.call('HMGET', jk, 'status', 'delivered', 'delivering', 'lease_until')
if not f[1] or f[2] == '1' or f[1] ~= ARGV[2] then
  redis.call('XACK', stream, DELIVERY_GROUP, entry)
  redis.call('XDEL', stream, entry)
  return 'done'
end
if f[3] and f[3] ~= consumer and tonumber(f[4] or '0') > now then return 'held' end
redis.call('HSET', jk, 'delivering', consumer, 'lease_until', tostring(now + lease))
return 'ok'
