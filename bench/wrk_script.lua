-- One wrk script for every scenario, chosen by the environment:
--   BENCH_BODY  a JSON body; "{phone}" in it becomes a distinct phone per request
--               (each wrk thread counts in its own range: 1201 + 7 digits starting at 2000000 + thread * 1000000)
--   BENCH_OFFSET  where in its range each thread starts (each repetition uses fresh phones)
--   BENCH_PREFIX  the phones' first digits (default 1201; the memory-growth load uses its own)
--   BENCH_OUT   where done() writes the summary as JSON
local body_template = os.getenv("BENCH_BODY")
local prefix = os.getenv("BENCH_PREFIX") or "1201"
local out_path = os.getenv("BENCH_OUT")
local threads = {}
local counter = 0
local base = 0

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

function init(args)
  base = 2000000 + thread_index * 1000000 + tonumber(os.getenv("BENCH_OFFSET") or "0")
end

function request()
  local body = body_template
  if string.find(body, "{phone}", 1, true) then
    body = string.gsub(body, "{phone}", prefix .. tostring(base + counter))
    counter = counter + 1
  end
  return wrk.format("POST", "/", {["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
  local f = io.open(out_path, "w")
  f:write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
  f:close()
end
