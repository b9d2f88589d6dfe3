-- wrk script for bench/shutdown.py: mixed load, pages for many visitors and their events.
--
-- Arguments (after `--`): KEY [VISITORS]. Three requests in four are the home
-- page for a visitor picked among VISITORS (default 2000); the fourth posts
-- five page views for one of them. Each event id is unique. `done` prints
-- `BENCH_RESULT {...}` (latencies in µs) with the personalized pages answered.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("prefix", string.format("%d-%d", os.time(), #threads))
end

local page = '{"query":"{ page(slug: \\"home\\") { personalized blocks { id variantId } } }"}'

function init(args)
   key = args[1]
   visitors = tonumber(args[2] or "2000")
   counter = 0
   pages = 0
end

function request()
   counter = counter + 1
   local visitor = string.format("sv-%d", math.random(visitors))
   if counter % 4 ~= 0 then
      return wrk.format("POST", "/graphql", {
         ["Content-Type"] = "application/json",
         ["X-Visitor-Id"] = visitor,
      }, page)
   end
   local parts = {}
   for i = 1, 5 do
      parts[i] = string.format(
         '{"type":"page_view","eventId":"%s-%d-%d","visitorId":"%s",'
            .. '"properties":{"category":"c%d"}}',
         prefix, counter, i, visitor, i % 7)
   end
   return wrk.format("POST", "/v1/events", {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. key,
   }, "[" .. table.concat(parts, ",") .. "]")
end

-- Personalized pages answered 200: each queued one exposure document (a page whose
-- profile could not be read logs none: the visitor's consent is unknown).
function response(status, headers, body)
   if status == 200 and string.find(body, '"personalized":true', 1, true) then
      pages = pages + 1
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   local answered = 0
   for _, thread in ipairs(threads) do
      answered = answered + thread:get("pages")
   end
   io.write(string.format(
      'BENCH_RESULT {"requests": %d, "duration_us": %d, "pages": %d, '
         .. '"latency_us": {"p50": %d, "p99": %d}, '
         .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
      summary.requests, summary.duration, answered,
      latency:percentile(50), latency:percentile(99),
      e.connect, e.read, e.write, e.status, e.timeout))
end
