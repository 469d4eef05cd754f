-- H2: POST a 1 KiB JSON document to /echo (wrk -s post.lua).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local filler = string.rep("x", 1002)  -- the document is exactly 1024 bytes
wrk.body = '{"n": 1, "filler": "' .. filler .. '"}'
