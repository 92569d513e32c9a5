-- wrk script: optional rotating tokens (tokens_file set by the harness), an optional header
-- with a new value each request (rotate_header, values rotate_prefix .. n: a new rate-limit key
-- each request), and a one-line report with requests/s, p50/p99/p99.9 latency (microseconds),
-- non-2xx responses and socket errors.
local tokens = {}
local next_token = 1
if tokens_file then
  for line in io.lines(tokens_file) do tokens[#tokens + 1] = line end
end
local rotated = 0

request = function()
  if rotate_header then
    rotated = rotated + 1
    local headers = {}
    for name, value in pairs(wrk.headers) do headers[name] = value end
    headers[rotate_header] = rotate_prefix .. rotated
    return wrk.format(nil, nil, headers)
  end
  if #tokens > 0 then
    local token = tokens[next_token]
    next_token = next_token % #tokens + 1
    return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. token })
  end
  return wrk.format()
end

done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("REPORT %.1f %d %d %d %d %d\n", summary.requests / seconds,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), summary.errors.status, errors))
end
