-- wrk script of the rackboot bench: when RBBENCH_MACS is set, every
-- request asks for the iPXE script of another machine of the bench fleet
-- (/ipxe?mac=PREFIX-xx-xx-xx&arch=x86_64&platform=pcbios, PREFIX from
-- RBBENCH_MAC_PREFIX, default 52-54-02), cycling through RBBENCH_MACS
-- machines; RBBENCH_PATH replaces the path (a static file for nginx, with
-- the same query so both servers parse the same request line). Without
-- RBBENCH_MACS, wrk's own URL is requested. done() prints the raw figures
-- as "rbbench KEY VALUE" lines for benchtab.

local macs = tonumber(os.getenv("RBBENCH_MACS") or "0")
local prefix = os.getenv("RBBENCH_MAC_PREFIX") or "52-54-02"
local path = os.getenv("RBBENCH_PATH") or "/ipxe"
local threads = 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

local i = 0
if macs > 0 then
  request = function()
    -- Threads start at different machines, so two threads do not ask for
    -- the same one at the same moment.
    local k = (i + (id or 0) * 7919) % macs
    i = i + 1
    local mac = string.format("%s-%02x-%02x-%02x", prefix,
      math.floor(k / 65536) % 256, math.floor(k / 256) % 256, k % 256)
    return wrk.format("GET", path .. "?mac=" .. mac .. "&arch=x86_64&platform=pcbios")
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("rbbench requests %d\n", summary.requests))
  io.write(string.format("rbbench duration_us %d\n", summary.duration))
  io.write(string.format("rbbench bytes %d\n", summary.bytes))
  io.write(string.format("rbbench socket_errors %d\n", e.connect + e.read + e.write + e.timeout))
  io.write(string.format("rbbench non2xx %d\n", e.status))
  io.write(string.format("rbbench p50_us %d\n", latency:percentile(50)))
  io.write(string.format("rbbench p90_us %d\n", latency:percentile(90)))
  io.write(string.format("rbbench p99_us %d\n", latency:percentile(99)))
  io.write(string.format("rbbench max_us %d\n", latency.max))
  io.write(string.format("rbbench mean_us %.1f\n", latency.mean))
end
