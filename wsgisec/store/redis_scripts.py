"""The Lua scripts that make each multi-key step of :class:`~wsgisec.store.redis.RedisStore`
one atomic command (Redis runs a script with no other command in between, on every host's
behalf): one round trip each, and the same code on one server, Sentinel and Cluster (the
keys of one call share a hash slot there).

Scripts name every key they touch in ``KEYS`` except :data:`DELETE_TAGGED`'s members,
which are built from the tag set's contents under the same hash tag (same slot).
"""

#: put / add: KEYS = [value key, tag set...]; ARGV = [json, ttl ms or "", member, "put"|"add"].
#: A tag set lives as long as its longest-lived member; one with a member that never
#: expires never expires. ``add`` writes nothing, tags included, unless the key is new,
#: so a concurrent ``delete_tagged`` sees either nothing or the key with all its tags.
PUT = """
local px = tonumber(ARGV[2])
if ARGV[4] == 'add' then
  local won
  if px then won = redis.call('SET', KEYS[1], ARGV[1], 'PX', px, 'NX')
  else won = redis.call('SET', KEYS[1], ARGV[1], 'NX') end
  if not won then return 0 end
elseif px then redis.call('SET', KEYS[1], ARGV[1], 'PX', px)
else redis.call('SET', KEYS[1], ARGV[1]) end
for i = 2, #KEYS do
  local left = redis.call('PTTL', KEYS[i])
  redis.call('SADD', KEYS[i], ARGV[3])
  if not px then redis.call('PERSIST', KEYS[i])
  elseif left == -2 or (left >= 0 and left < px) then redis.call('PEXPIRE', KEYS[i], px) end
end
return 1
"""

#: update: KEYS = [value key]; ARGV = [the JSON read, the merged JSON]. Compare and set,
#: keeping the TTL: 1 set, 0 the key is gone, -1 it changed since it was read (retry).
COMPARE_AND_SET = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if current ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
"""

#: delete_tagged: KEYS = [tag set]; ARGV = [value key prefix]. Every member and the set,
#: in one step: a key put with the tag concurrently is either deleted or put afterwards.
DELETE_TAGGED = """
local members = redis.call('SMEMBERS', KEYS[1])
local deleted = 0
for _, member in ipairs(members) do
  deleted = deleted + redis.call('DEL', ARGV[1] .. member)
end
redis.call('DEL', KEYS[1])
return deleted
"""

#: incr: KEYS = [counter]; ARGV = [window ms]. The window starts at the first count.
INCR = """
local count = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return count
"""

#: the repeat count of an aggregated event: KEYS = [counter]; ARGV = [ttl ms].
COUNT_REPEAT = """
local count = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return count
"""

#: add_since: KEYS = [value key, marker key]; ARGV = [json, ttl ms or "", created or ""].
#: Reads the marker and, when it is there and its ``since`` is not after ``created``,
#: adds the key (SET NX): the nonce epoch check and the nonce in one round trip.
#: Returns 1 added, 0 the key was there, -1 not tried (the caller decides in Python).
ADD_SINCE = """
local marker = redis.call('GET', KEYS[2])
if not marker then return -1 end
local created = tonumber(ARGV[3])
if created then
  local ok, record = pcall(cjson.decode, marker)
  local since = ok and type(record) == 'table' and tonumber(record['since'])
  if not since or created < since then return -1 end
end
local px = tonumber(ARGV[2])
local won
if px then won = redis.call('SET', KEYS[1], ARGV[1], 'PX', px, 'NX')
else won = redis.call('SET', KEYS[1], ARGV[1], 'NX') end
if won then return 1 end
return 0
"""
