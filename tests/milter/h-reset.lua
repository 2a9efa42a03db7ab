-- Several transactions on one connection: the message context is reset
-- between them (taken for signing, untouched, taken for signing again, and a
-- message without certificate after a signing one).
if tap == nil then dofile(libdir .. "/lib.lua") end

local conn = open_conn("client.test", "127.0.0.1")
local m1 = simple_message("andi@banjarkota.go.id")
m1.qid = "RESET0001"
sign_up_to_eom(conn, m1, "same connection, message 1 (andi)")
local m2 = simple_message("other@example.org")
m2.qid = "RESET0002"
check_untouched(conn, run_message(conn, m2), "same connection, message 2 (other@example.org)")
local m3 = simple_message("noreply@banjarkota.go.id")
m3.qid = "RESET0003"
sign_up_to_eom(conn, m3, "same connection, message 3 (noreply)")
local m4 = simple_message("budi@banjarkota.go.id")
m4.qid = "RESET0004"
check_untouched(conn, run_message(conn, m4), "same connection, message 4 (budi@, no certificate)")
mt.disconnect(conn)
if scenario == nil then finish() end
