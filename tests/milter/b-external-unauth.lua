-- (b) a client outside internal_hosts, not authenticated, is inbound mail:
-- it passes untouched even from a signing domain with a certificate.
if tap == nil then dofile(libdir .. "/lib.lua") end

local conn = open_conn("mail.example.net", "192.0.2.1")
local m = simple_message("andi@banjarkota.go.id")
local r = run_message(conn, m)
check_untouched(conn, r, "external 192.0.2.1 without auth")
mt.disconnect(conn)

-- an empty {auth_authen} is no authentication
conn = open_conn("mail.example.net", "198.51.100.7")
m = simple_message("andi@banjarkota.go.id")
m.mailmacros = { "{auth_authen}", "" }
r = run_message(conn, m)
check_untouched(conn, r, "external 198.51.100.7 with empty {auth_authen}")
mt.disconnect(conn)
if scenario == nil then finish() end
