-- (f) From in a signing domain without a certificate, with
-- on_no_certificate = "reject": the message is rejected.
if tap == nil then dofile(libdir .. "/lib.lua") end

local conn = open_conn("client.test", "127.0.0.1")
local r = run_message(conn, simple_message("Budi <budi@banjarkota.go.id>"))
tap(r.reply == SMFIR_REJECT or r.reply == SMFIR_REPLYCODE,
	"budi@ (no certificate), on_no_certificate=reject: rejected (reply " ..
	reply_name(r.reply) .. " at " .. tostring(r.stage) .. ")")
if r.eom and r.reply == SMFIR_REPLYCODE then
	tap(mt.eom_check(conn, MT_SMTPREPLY, "550") or mt.eom_check(conn, MT_SMTPREPLY, "554"),
		"reject carries a 5xx SMTP reply")
end
mt.disconnect(conn)

-- a mailbox that has a certificate is still taken for signing
conn = open_conn("client.test", "127.0.0.1")
sign_up_to_eom(conn, simple_message("andi@banjarkota.go.id"), "andi@ under on_no_certificate=reject")
mt.disconnect(conn)

-- and a foreign domain is not rejected
conn = open_conn("client.test", "127.0.0.1")
r = run_message(conn, simple_message("other@example.org"))
check_untouched(conn, r, "other@example.org under on_no_certificate=reject")
mt.disconnect(conn)
if scenario == nil then finish() end
