-- wrk script for bench/run.py: sets the request, reports results as one JSON line.
--
-- Arguments (after `--`): METHOD [VISITOR_ID [BODY]]. An empty VISITOR_ID sends
-- no X-Visitor-Id header; a BODY is sent as application/json.
-- `done` prints `BENCH_RESULT {...}`; latencies are in microseconds.

function init(args)
   wrk.method = args[1] or "GET"
   local visitor = args[2]
   if visitor ~= nil and visitor ~= "" then
      wrk.headers["X-Visitor-Id"] = visitor
   end
   if args[3] ~= nil then
      wrk.body = args[3]
      wrk.headers["Content-Type"] = "application/json"
   end
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
