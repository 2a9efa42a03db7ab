-- (g) an authenticated client ({auth_authen} set) from a non-internal
-- address is outbound mail: the filter takes it for signing (see
-- sign_up_to_eom in lib.lua; end of message is checked by signing.sh).
if tap == nil then dofile(libdir .. "/lib.lua") end

local conn = open_conn("laptop.example.net", "203.0.113.9")
local m = simple_message("andi@banjarkota.go.id")
m.mailmacros = { "{auth_type}", "PLAIN", "{auth_authen}", "andi" }
sign_up_to_eom(conn, m, "external 203.0.113.9 authenticated as andi")
mt.disconnect(conn)

-- the same client without authentication is inbound mail
conn = open_conn("laptop.example.net", "203.0.113.9")
local r = run_message(conn, simple_message("andi@banjarkota.go.id"))
check_untouched(conn, r, "external 203.0.113.9 not authenticated")
mt.disconnect(conn)
if scenario == nil then finish() end
