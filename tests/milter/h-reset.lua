-- Several transactions on one connection: the message context is reset
-- between them (taken for signing, untouched, taken for signing again, and a
-- message without certificate after a signing one).
if tap == nil then dofile(libdir .. "/lib.lua") end

local conn = open_conn("client.test", "127.0.0.1")
sign_up_to_eom(conn, qid_message("andi@banjarkota.go.id", "RESET0001"),
	"same connection, message 1 (andi)")
check_untouched(conn, run_message(conn, qid_message("other@example.org", "RESET0002")),
	"same connection, message 2 (other@example.org)")
sign_up_to_eom(conn, qid_message("noreply@banjarkota.go.id", "RESET0003"),
	"same connection, message 3 (noreply)")
check_untouched(conn, run_message(conn, qid_message("budi@banjarkota.go.id", "RESET0004")),
	"same connection, message 4 (budi@, no certificate)")
mt.disconnect(conn)
if scenario == nil then finish() end
