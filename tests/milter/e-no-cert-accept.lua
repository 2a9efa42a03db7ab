-- (e) From in a signing domain without a certificate: with the default
-- on_no_certificate = "accept" the message passes unsigned.
if tap == nil then dofile(libdir .. "/lib.lua") end

local conn = open_conn("client.test", "127.0.0.1")
local m = simple_message("Budi <budi@banjarkota.go.id>")
local r = run_message(conn, m)
check_untouched(conn, r, "budi@ (no certificate), on_no_certificate=accept")
mt.disconnect(conn)
if scenario == nil then finish() end
