-- (e) From in a signing domain without a certificate: with the default
-- on_no_certificate = "accept" the message passes unsigned.
if tap == nil then dofile(libdir .. "/lib.lua") end

check_untouched_alone("client.test", "127.0.0.1", simple_message("Budi <budi@banjarkota.go.id>"),
	"budi@ (no certificate), on_no_certificate=accept")
if scenario == nil then finish() end
