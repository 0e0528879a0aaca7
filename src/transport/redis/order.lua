-- Orders a batch of patches into an object's log: one call, so no other batch interleaves.
-- KEYS[1]: the log (a stream; an entry's id is 0-<version>), KEYS[2]: the highest sequence number
-- ordered per origin (a hash), KEYS[3]: the object's head (a hash: version, chain, protocol).
-- Each entry carries the chain: the SHA-1 of the previous entry's chain, its origin and its seq.
-- Replicas check it as they read, so that a log that changed under them (a failover to a replica
-- that lacked the last entries, which then took others) never goes unnoticed.
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
local version = tonumber(redis.call('HGET', KEYS[3], 'version') or 0)
local chain = redis.call('HGET', KEYS[3], 'chain') or ''
-- Each origin's progress is read once per batch and written once at its end.
local lasts, changed = {}, {}
local results = {}
local gapped = {}
local failure
for i = 2, #ARGV, 4 do
  local origin, seq_text, skip, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2] == '1', ARGV[i + 3]
  local seq = tonumber(seq_text)
  local last = lasts[origin]
  if last == nil then
    last = tonumber(redis.call('HGET', KEYS[2], origin) or 0)
    lasts[origin] = last
  end
  if gapped[origin] or (seq > last + 1 and not skip) then
    gapped[origin] = true
    results[#results + 1] = -last
  elseif seq <= last then
    results[#results + 1] = 0
  else
    local linked = redis.sha1hex(chain .. ' ' .. origin .. ' ' .. seq_text)
    local added = redis.pcall('XADD', KEYS[1], '0-' .. (version + 1), 'o', origin, 's', seq_text, 'c', linked, 'p', payload)
    if type(added) == 'table' and added.err then
      -- The stream holds ids this head does not know (another writer): what was added stays
      -- consistent with the head written below, and the caller is told.
      failure = added.err
      break
    end
    version = version + 1
    chain = linked
    lasts[origin] = seq
    changed[origin] = true
    results[#results + 1] = version
  end
end
local progress = {}
for origin in pairs(changed) do
  progress[#progress + 1] = origin
  progress[#progress + 1] = lasts[origin]
end
if #progress > 0 then
  redis.call('HSET', KEYS[2], unpack(progress))
end
redis.call('HSET', KEYS[3], 'protocol', protocol, 'version', version, 'chain', chain)
if failure then
  return redis.error_reply(failure)
end
results[#results + 1] = version
return results
