-- movierec bench serve: the wrk script of one scenario.
--
-- wrk -s bench.lua <base url> -- <requests file>
--
-- The requests file holds one request a line, "METHOD<TAB>PATH<TAB>BODY" (BODY is compact
-- JSON, or empty for a GET), after any "HEADER<TAB>NAME<TAB>VALUE" lines, headers sent with
-- every request (an API key: in the file, never on wrk's command line). Each wrk thread
-- formats every request once, in init(), and
-- then cycles through them; threads start at different places in the cycle. Each thread
-- counts the responses by HTTP status; done() adds the counts up over the threads and
-- prints one line, "MOVIEREC_WRK <json>", with wrk's summary, its latency percentiles
-- (microseconds) and the status counts, which `movierec bench serve` reads.

local requests = {}
local count = 0
local position = 0
statuses = {}

local threads = {}
local started = 0

function setup(thread)
   thread:set("thread_index", started)
   started = started + 1
   table.insert(threads, thread)
end

function init(args)
   local path = args[1]
   if path == nil then
      error("bench.lua: give the requests file after --")
   end
   local file = assert(io.open(path, "r"))
   local common = {}
   local number = 0
   for line in file:lines() do
      number = number + 1
      local method, target, body = line:match("^(%u+)\t([^\t]+)\t?(.*)$")
      if method == nil then
         error("bench.lua: bad line " .. number .. " in " .. path)
      end
      if method == "HEADER" then
         common[target] = body
      else
         local headers = {}
         for name, value in pairs(common) do
            headers[name] = value
         end
         if body == "" then
            body = nil
         else
            headers["Content-Type"] = "application/json"
         end
         count = count + 1
         requests[count] = wrk.format(method, target, headers, body)
      end
   end
   file:close()
   if count == 0 then
      error("bench.lua: no requests in " .. path)
   end
   -- spread the threads over the cycle (a prime stride, so they rarely coincide)
   position = ((thread_index or 0) * 7919) % count
end

function request()
   position = position % count + 1
   return requests[position]
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, _)
   local totals = {}
   for _, thread in ipairs(threads) do
      for status, n in pairs(thread:get("statuses") or {}) do
         totals[status] = (totals[status] or 0) + n
      end
   end
   local codes = {}
   for status, n in pairs(totals) do
      codes[#codes + 1] = string.format('"%d": %d', status, n)
   end
   local e = summary.errors
   local percentiles = {}
   for _, p in ipairs({ 50, 90, 95, 99, 99.9 }) do
      percentiles[#percentiles + 1] = string.format('"%g": %.1f', p, latency:percentile(p))
   end
   io.write(string.format(
      'MOVIEREC_WRK {"requests": %d, "duration_us": %d, "bytes": %d, '
         .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
         .. '"latency_us": {"min": %.1f, "mean": %.1f, "stdev": %.1f, "max": %.1f, "percentiles": {%s}}, '
         .. '"statuses": {%s}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.stdev, latency.max, table.concat(percentiles, ", "),
      table.concat(codes, ", ")
   ))
end
