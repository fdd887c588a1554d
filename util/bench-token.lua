-- wrk script of util/bench.sh: token requests, each with a code or a
-- refresh token of its own (the seeded ones: PREFIX1, PREFIX2, ...).
--
--   wrk -t1 ... -s util/bench-token.lua URL -- code|refresh PREFIX ID:SECRET VERIFIER

local kind, prefix, auth, verifier
local n = 0

function init(args)
  kind, prefix, verifier = args[1], args[2], args[4]
  auth = "Basic " .. wrk_base64(args[3])
end

-- base64 of the credentials, in Lua (wrk has no base64 of its own)
function wrk_base64(s)
  local t = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  return ((s:gsub('.', function(x)
    local r, b = '', x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and '1' or '0') end
    return r
  end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
    if #x < 6 then return '' end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
    return t:sub(c + 1, c + 1)
  end) .. ({ '', '==', '=' })[#s % 3 + 1])
end

request = function()
  n = n + 1
  local body
  if kind == "code" then
    body = "grant_type=authorization_code&code=" .. prefix .. n
           .. "&code_verifier=" .. verifier
  else
    body = "grant_type=refresh_token&refresh_token=" .. prefix .. n
  end
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = auth,
  }, body)
end
