-- (a) outbound mail from a mailbox with a certificate, from an internal
-- client (127.0.0.1, ::1): the filter takes the message for signing.  (End of
-- message -- body replacement, Content-Type multipart/signed, Content-*
-- headers removed -- is checked by signing.sh: see sign_up_to_eom in lib.lua.)
if tap == nil then dofile(libdir .. "/lib.lua") end

local conn = open_conn("client.test", "127.0.0.1")
sign_up_to_eom(conn, simple_message("Andi Pratama <andi@banjarkota.go.id>", {
	{ "MIME-Version", "1.0" },
	{ "Content-Type", "text/plain; charset=utf-8" },
	{ "Content-Transfer-Encoding", "8bit" },
	{ "Content-Disposition", "inline" },
}), "internal 127.0.0.1, andi, 8bit text")
mt.disconnect(conn)

conn = open_conn("client.test", "127.0.0.1")
sign_up_to_eom(conn, simple_message("andi@banjarkota.go.id", {}, "Plain ASCII, no MIME headers.\r\n"),
	"internal 127.0.0.1, andi, no MIME headers")
mt.disconnect(conn)

conn = open_conn("client.test", "127.0.0.1")
sign_up_to_eom(conn, simple_message("sekda@banjarkota.go.id", {
	{ "MIME-Version", "1.0" },
	{ "Content-Type", "multipart/mixed; boundary=\"mt-b1\"" },
}, "preamble\r\n--mt-b1\r\nContent-Type: text/plain\r\n\r\npart one\r\n" ..
	"--mt-b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" ..
	"AAECAwQFBgcICQ==\r\n--mt-b1--\r\n"), "internal 127.0.0.1, sekda (role), multipart/mixed")
mt.disconnect(conn)

conn = open_conn("client.test", "127.0.0.1")
sign_up_to_eom(conn, simple_message("noreply@banjarkota.go.id"), "internal 127.0.0.1, noreply (system)")
mt.disconnect(conn)

local ok6, conn6 = pcall(open_conn, "localhost", "::1")
if ok6 then
	sign_up_to_eom(conn6, simple_message("andi@banjarkota.go.id"), "internal ::1, andi")
	mt.disconnect(conn6)
else
	diag("IPv6 connect info not supported by this miltertest: " .. tostring(conn6))
end
if scenario == nil then finish() end
