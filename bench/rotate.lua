-- wrk script: cycle through a file of prepared requests (many visitors, many browsers).
--
-- Arguments (after `--`): REQUESTS_FILE [BODY_FILE [START]]
--
-- REQUESTS_FILE has one request per line, tab-separated:
--     METHOD <TAB> PATH [<TAB> Header-Name: value]...
-- If BODY_FILE is given, every request carries its content as an
-- application/json body.
--
-- Each thread starts at its own offset in the list (plus START, so that
-- consecutive runs continue where the last one stopped) and walks it in
-- order, so every line is sent about equally often. Responses are counted by the cache
-- scope they declare (`X-Tessera-Cache-Scope`: public, audience, private; "-"
-- when absent): wrk does not say which request a response answers, so the
-- response must tell. Per scope: non-200 statuses, GraphQL pages served
-- unpersonalized (`"personalized":false` in the body), edge cache hits
-- (`X-Cache: HIT`, set by the shipped VCL), responses that set a cookie, and
-- hits that set one (which must never happen).
-- `done` prints one line `BENCH_RESULT {...}` (latencies in microseconds)
-- with the counts per scope under "classes".

local threads = {}
local thread_count = 0

function setup(thread)
   thread_count = thread_count + 1
   thread:set("tid", thread_count)
   table.insert(threads, thread)
end

local function read_file(path)
   local handle = assert(io.open(path, "rb"))
   local content = handle:read("*a")
   handle:close()
   return content
end

local function split(line, separator)
   local parts = {}
   for part in string.gmatch(line, "([^" .. separator .. "]+)") do
      table.insert(parts, part)
   end
   return parts
end

function init(args)
   local body = nil
   if args[2] ~= nil and args[2] ~= "" then
      body = read_file(args[2])
   end
   requests = {}
   for line in string.gmatch(read_file(args[1]), "[^\n]+") do
      local fields = split(line, "\t")
      local headers = {}
      for i = 3, #fields do
         local name, value = string.match(fields[i], "^([^:]+):%s*(.*)$")
         headers[name] = value
      end
      if body ~= nil then
         headers["Content-Type"] = "application/json"
      end
      table.insert(requests, wrk.format(fields[1], fields[2], headers, body))
   end
   -- Spread the threads over the list: thread 1 starts at the top, thread 2
   -- half-way (wrk runs 2 threads here), thread 3 a quarter in, and so on.
   local start = tonumber(args[3] or "0") or 0
   index = (start + math.floor(#requests * (1 - 1 / 2 ^ (tid - 1)))) % #requests
   counts = {}
end

function request()
   index = index + 1
   if index > #requests then
      index = 1
   end
   return requests[index]
end

-- Flat keys ("scope metric"): wrk 4.1 crashes copying nested tables between threads.
local function bump(class, name)
   local key = class .. " " .. name
   counts[key] = (counts[key] or 0) + 1
end

function response(status, headers, body)
   local class = headers["X-Tessera-Cache-Scope"] or headers["x-tessera-cache-scope"] or "-"
   bump(class, "requests")
   if status ~= 200 then
      bump(class, "non200")
   end
   if body ~= nil and string.find(body, '"personalized":false', 1, true) then
      bump(class, "unpersonalized")
   end
   local cache = headers["X-Cache"] or headers["x-cache"]
   if cache == "HIT" then
      bump(class, "hits")
   end
   if headers["Set-Cookie"] or headers["set-cookie"] then
      bump(class, "set_cookie")
      if cache == "HIT" then
         -- A shared copy must never set anyone's cookie.
         bump(class, "hit_set_cookie")
      end
   end
end

local METRICS = {"requests", "non200", "unpersonalized", "hits", "set_cookie", "hit_set_cookie"}

function done(summary, latency, requests_done)
   local merged = {}
   for _, thread in ipairs(threads) do
      for key, value in pairs(thread:get("counts") or {}) do
         local class, name = string.match(key, "^(.*) ([%w_]+)$")
         merged[class] = merged[class] or {}
         merged[class][name] = (merged[class][name] or 0) + value
      end
   end
   local parts = {}
   for class, entry in pairs(merged) do
      local fields = {}
      for _, name in ipairs(METRICS) do
         table.insert(fields, string.format('"%s": %d', name, entry[name] or 0))
      end
      table.insert(parts, string.format('"%s": {%s}', class, table.concat(fields, ", ")))
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, '
         .. '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}, '
         .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
         .. '"classes": {%s}}\n',
      summary.requests, summary.duration, summary.bytes,
      latency.mean, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max,
      e.connect, e.read, e.write, e.status, e.timeout, table.concat(parts, ", ")))
end
