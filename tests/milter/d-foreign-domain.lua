-- (d) From in a domain that is not in "domains" passes untouched, even from
-- an internal client (and even though a certificate for it may exist).
if tap == nil then dofile(libdir .. "/lib.lua") end

for _, from in ipairs({ "Other <other@example.org>",
	"someone@sub.banjarkota.go.id", "andi@banjarkota.go.id.evil.example" }) do
	check_untouched_alone("client.test", "127.0.0.1", simple_message(from),
		"From " .. from .. " (not a signing domain)")
end
if scenario == nil then finish() end
