-- wrk script for bench/ingest.py: POST /v1/events with 50 new events per request.
--
-- Arguments (after `--`): KEY [BATCH]. Every event id is unique (thread prefix +
-- counter), so nothing is a duplicate; each request is one visitor's flush, the
-- visitor picked among 500 per thread. `done` prints `BENCH_RESULT {...}` (µs).

local threads_made = 0

function setup(thread)
   threads_made = threads_made + 1
   thread:set("prefix", string.format("%d-%d", os.time(), threads_made))
end

function init(args)
   key = args[1]
   size = tonumber(args[2] or "50")
   counter = 0
end

function request()
   counter = counter + 1
   local visitor = string.format("bv-%s-%d", prefix, counter % 500)
   local parts = {}
   for i = 1, size do
      parts[i] = string.format(
         '{"type":"page_view","eventId":"%s-%d-%d","visitorId":"%s",'
            .. '"properties":{"category":"c%d","productId":"P%d"},'
            .. '"context":{"page":"/p/%d"}}',
         prefix, counter, i, visitor, i % 7, i % 13, i % 13)
   end
   local body = "[" .. table.concat(parts, ",") .. "]"
   return wrk.format("POST", "/v1/events", {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. key,
   }, body)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, '
         .. '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}, '
         .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
      summary.requests, summary.duration, summary.bytes,
      latency.mean, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max,
      e.connect, e.read, e.write, e.status, e.timeout))
end
