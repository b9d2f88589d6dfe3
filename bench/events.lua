-- wrk script: browsers' event beacons, `POST /v1/events`, for the benchmark's visitors.
--
-- Arguments (after `--`): KEY RUN VISITORS [BATCH [VISITOR_PREFIX]]
--
-- Each request is one visitor's flush of BATCH events (default 10): page views
-- with a category and product, a click now and then, an add_to_cart every so
-- often. The visitor is drawn at random among `<VISITOR_PREFIX>-0` ..
-- `<VISITOR_PREFIX>-<VISITORS - 1>` (default prefix "bv", as bench/visitors.py
-- names them), so events change the profiles the page requests read. Event
-- ids are unique within a run (RUN + thread + counter): nothing is a duplicate.
-- `done` prints `BENCH_RESULT {...}` (latencies in microseconds) with the
-- count of 503 answers (`refused`: the gateway sheds the load, with
-- Retry-After) and of other non-2xx answers (`non2xx`).

local threads = {}
local CATEGORIES = {"camping", "climbing", "running", "cycling", "water", "outdoor"}

function setup(thread)
   table.insert(threads, thread)
   thread:set("tid", #threads)
end

function init(args)
   key = args[1]
   run = args[2]
   visitors = tonumber(args[3])
   size = tonumber(args[4] or "10")
   prefix = args[5] or "bv"
   counter = 0
   failed = 0
   refused = 0
   math.randomseed(os.time() + tid * 7919)
end

function request()
   counter = counter + 1
   local visitor = string.format("%s-%d", prefix, math.random(0, visitors - 1))
   local parts = {}
   for i = 1, size do
      local id = string.format("%s-%d-%d-%d", run, tid, counter, i)
      local category = CATEGORIES[math.random(#CATEGORIES)]
      local product = string.format("P%d", math.random(0, 199))
      local roll = math.random()
      local event
      if roll < 0.08 then
         event = string.format(
            '{"type":"add_to_cart","eventId":"%s","visitorId":"%s",'
               .. '"properties":{"productId":"%s","price":%d,"category":"%s"},'
               .. '"context":{"page":"/p/%s"}}',
            id, visitor, product, math.random(10, 200), category, product)
      elseif roll < 0.25 then
         event = string.format(
            '{"type":"click","eventId":"%s","visitorId":"%s",'
               .. '"properties":{"category":"%s"},"context":{"page":"/p/%s"}}',
            id, visitor, category, product)
      else
         event = string.format(
            '{"type":"page_view","eventId":"%s","visitorId":"%s",'
               .. '"properties":{"category":"%s","productId":"%s"},"context":{"page":"/p/%s"}}',
            id, visitor, category, product, product)
      end
      parts[i] = event
   end
   return wrk.format("POST", "/v1/events", {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. key,
   }, "[" .. table.concat(parts, ",") .. "]")
end

function response(status, headers, body)
   if status == 503 then
      refused = refused + 1
   elseif status < 200 or status > 299 then
      failed = failed + 1
   end
end

function done(summary, latency, requests)
   local non2xx = 0
   local refused_total = 0
   for _, thread in ipairs(threads) do
      non2xx = non2xx + (thread:get("failed") or 0)
      refused_total = refused_total + (thread:get("refused") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, '
         .. '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}, '
         .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
         .. '"non2xx": %d, "refused": %d}\n',
      summary.requests, summary.duration, summary.bytes,
      latency.mean, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max,
      e.connect, e.read, e.write, e.status, e.timeout, non2xx, refused_total))
end
