-- record_duration.lua: add one job's duration to the moving average used for ETAs
-- (WorkerQueue.record_duration).
-- KEYS: [1] stats
-- ARGV: [1] seconds, [2] alpha (the newest sample's weight), [3] the hash's TTL (s)
-- Returns the new average (a string).
return tostring(record_duration(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]))
