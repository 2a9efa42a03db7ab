-- (b) a client outside internal_hosts, not authenticated, is inbound mail:
-- it passes untouched even from a signing domain with a certificate.
if tap == nil then dofile(libdir .. "/lib.lua") end

check_untouched_alone("mail.example.net", "192.0.2.1", simple_message("andi@banjarkota.go.id"),
	"external 192.0.2.1 without auth")

-- an empty {auth_authen} is no authentication
local m = simple_message("andi@banjarkota.go.id")
m.mailmacros = { "{auth_authen}", "" }
check_untouched_alone("mail.example.net", "198.51.100.7", m,
	"external 198.51.100.7 with empty {auth_authen}")
if scenario == nil then finish() end
