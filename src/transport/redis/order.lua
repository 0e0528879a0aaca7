-- Orders a batch of patches into an object's log: one call, so no other batch interleaves.
-- KEYS[1]: the log (a stream; an entry's id is 0-<version>), KEYS[2]: the highest sequence number
-- ordered per origin (a hash), KEYS[3]: the object's head (a hash: version, protocol).
-- ARGV[1]: the protocol of the caller, then per patch: origin, seq, skip (1: the origin's patches
-- before it were lost for good, place it after the origin's last one), payload.
-- Returns, per patch: its version; 0 when (origin, seq) was ordered already (a resend after a
-- reconnect, which dedupe makes safe); or -last when seq does not follow the origin's last
-- ordered seq (a gap: patches of that origin were lost, and the caller resubmits from last + 1);
-- then the version the log has reached. Every call writes (the protocol), so that a WAIT after it
-- confirms the whole log up to that version, even for a batch of duplicates or none.
-- Redis cannot run the patch engine: whether a patch applies is decided by every replica that
-- reads the log, by the same rules, so every replica reaches the same verdict.
local protocol = tonumber(ARGV[1])
local known = tonumber(redis.call('HGET', KEYS[3], 'protocol') or protocol)
if known ~= protocol then
  return redis.error_reply('MEMSYNC_PROTOCOL this object is written with protocol ' .. known .. ', not ' .. protocol)
end
redis.call('HSET', KEYS[3], 'protocol', protocol)
local results = {}
local gapped = {}
for i = 2, #ARGV, 4 do
  local origin, seq, skip, payload = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2] == '1', ARGV[i + 3]
  local last = tonumber(redis.call('HGET', KEYS[2], origin) or 0)
  if gapped[origin] or (seq > last + 1 and not skip) then
    gapped[origin] = true
    results[#results + 1] = -last
  elseif seq <= last then
    results[#results + 1] = 0
  else
    -- The entry first: when XADD fails (the stream holds another writer's ids), the head and
    -- the origin's progress stay as they were.
    local version = tonumber(redis.call('HGET', KEYS[3], 'version') or 0) + 1
    redis.call('XADD', KEYS[1], '0-' .. version, 'o', origin, 's', seq, 'p', payload)
    redis.call('HSET', KEYS[3], 'version', version)
    redis.call('HSET', KEYS[2], origin, seq)
    results[#results + 1] = version
  end
end
results[#results + 1] = tonumber(redis.call('HGET', KEYS[3], 'version') or 0)
return results
