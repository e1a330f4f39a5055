-- Requests for wrk, built from a template given by benchmarks/load.py:
--   wrk ... -s wrk_requests.lua URL -- METHOD PATH BODY HEADER KEY MAX_ID MAX_OFFSET TOKEN
-- In PATH and BODY, {id} becomes a random id in 1..MAX_ID, {offset} a random offset
-- in 0..MAX_OFFSET, and {unique} a value no other request of any run uses (TOKEN is
-- new for every run, then the thread and a counter). At the end one line starting
-- with BENCH_JSON carries the numbers load.py reads.

local threads = {}
local method, path, body, max_id, max_offset, token
local counter = 0

function setup(thread)
   thread:set("thread_number", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   method, path, body = args[1], args[2], args[3]
   wrk.headers[args[4]] = args[5]
   max_id, max_offset, token = tonumber(args[6]), tonumber(args[7]), args[8]
   if body == "" then
      body = nil
   else
      wrk.headers["Content-Type"] = "application/json"
   end
   -- Different ids in every thread and every run, yet reproducible from the token.
   math.randomseed(tonumber(token, 16) + thread_number)
end

local function fill(text)
   return (text:gsub("{(%a+)}", function(name)
      if name == "id" then
         return tostring(math.random(1, max_id))
      elseif name == "offset" then
         return tostring(math.random(0, max_offset))
      elseif name == "unique" then
         return token .. "-" .. thread_number .. "-" .. counter
      end
   end))
end

function request()
   counter = counter + 1
   return wrk.format(method, fill(path), nil, body and fill(body))
end

function done(summary, latency, requests)
   local errors = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
         .. '"socket_errors": %d, "status_errors": %d, "timeouts": %d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      errors.connect + errors.read + errors.write, errors.status, errors.timeout
   ))
end
