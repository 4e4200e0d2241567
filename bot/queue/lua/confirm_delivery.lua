-- confirm_delivery.lua: end a delivery (DeliveryQueue.confirm_delivery): acknowledge and
-- delete the outcome entry, drop the lease and, when sent, mark the job delivered.
-- KEYS: [1] results:{bot}, [2] job:{id}
-- ARGV: [1] outcome entry id, [2] outcome status, [3] '1' sent | '0' given up
-- Returns 1 when this call marked the job delivered; 0 when it already was (a duplicate
-- send happened: the lease had lapsed and another consumer sent it too), the job vanished
-- or moved on, or the delivery was given up.
local stream, jk, entry = KEYS[1], KEYS[2], ARGV[1]
local f = redis.call('HMGET', jk, 'status', 'delivered')
redis.call('XACK', stream, DELIVERY_GROUP, entry)
redis.call('XDEL', stream, entry)
if not f[1] then return 0 end
redis.call('HDEL', jk, 'delivering', 'lease_until')
if f[2] == '1' or f[1] ~= ARGV[2] or ARGV[3] ~= '1' then return 0 end
redis.call('HSET', jk, 'delivered', '1')
return 1
