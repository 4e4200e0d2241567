-- record_duration.lua: add one job's duration to the moving average used for ETAs and, if
-- given, to its style's (the stuck bounds) (WorkerQueue.record_duration).
-- KEYS: [1] stats
-- ARGV: [1] seconds, [2] alpha (the newest sample's weight), [3] the hash's TTL (s),
--       [4] the job's style (optional)
-- Returns the new average (a string).
return tostring(record_duration(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3],
                                {ARGV[4]}))
