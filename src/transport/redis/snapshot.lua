-- Makes a snapshot the object's current one, forward only, and trims the log it makes redundant.
-- KEYS[1]: the pointer (a hash: version, chunks, chain, time), KEYS[2]: the log, KEYS[3]: the
-- snapshots made (a list of '<version>:<ms>', newest first).
-- ARGV: version, chunks, chain, the entries to keep before it, the ms to keep them.
-- Returns the replaced snapshot's version and chunk count (its chunks are the caller's to
-- expire; {0, 0}: none), or {-1, 0} when the pointer is already at this version or later.
local version, chunks, chain = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local keep_entries, keep_ms = tonumber(ARGV[4]), tonumber(ARGV[5])
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or -1)
if version <= current then
  return {-1, 0}
end
local old_chunks = tonumber(redis.call('HGET', KEYS[1], 'chunks') or 0)
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('HSET', KEYS[1], 'version', version, 'chunks', chunks, 'chain', chain, 'time', now)
redis.call('LPUSH', KEYS[3], version .. ':' .. now)
redis.call('LTRIM', KEYS[3], 0, 99)
-- The log up to the newest snapshot at least keep_ms old is redundant, keeping keep_entries
-- before the new one for replicas reading a little behind.
local floor = 0
for _, made in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
  local at, when = string.match(made, '^(%d+):(%d+)$')
  if now - tonumber(when) >= keep_ms then
    floor = tonumber(at)
    break
  end
end
floor = math.min(floor, version - keep_entries)
if floor > 0 then
  redis.call('XTRIM', KEYS[2], 'MINID', '0-' .. (floor + 1))
end
return {math.max(current, 0), old_chunks}
