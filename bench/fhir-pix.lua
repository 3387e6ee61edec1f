-- bench/fhir-pix.lua: the wrk script of bench/fhir-vs-nginx.sh. Each
-- request is the next line of the file named after wrk's "--" (request
-- paths, one a line: PIXm queries for many patients, so no answer is one
-- cached in a loop), each thread starting at its own place; every request
-- asks for FHIR JSON. At the end one line for the script to read:
--   WRK requests=N seconds=S rate=R p50_ms=A p99_ms=B non2xx=C errors=D

local threads = {}

function setup(thread)
	table.insert(threads, thread)
	thread:set("nth", #threads)
end

function init(args)
	local headers = { Accept = "application/fhir+json" }
	reqs = {}
	for line in io.lines(args[1]) do
		reqs[#reqs + 1] = wrk.format("GET", line, headers)
	end
	assert(#reqs > 0, "no request paths in " .. tostring(args[1]))
	at = ((nth or 1) - 1) * 7919 % #reqs
end

function request()
	at = at % #reqs + 1
	return reqs[at]
end

function done(summary, latency, requests)
	local e = summary.errors
	local secs = summary.duration / 1e6
	io.write(string.format(
		"WRK requests=%d seconds=%.3f rate=%.1f p50_ms=%.3f p99_ms=%.3f non2xx=%d errors=%d\n",
		summary.requests, secs, summary.requests / secs,
		latency:percentile(50) / 1000, latency:percentile(99) / 1000,
		e.status, e.connect + e.read + e.write + e.timeout))
end
