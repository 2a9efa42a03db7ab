-- (d) From in a domain that is not in "domains" passes untouched, even from
-- an internal client (and even though a certificate for it may exist).
if tap == nil then dofile(libdir .. "/lib.lua") end

for _, from in ipairs({ "Other <other@example.org>",
	"someone@sub.banjarkota.go.id", "andi@banjarkota.go.id.evil.example" }) do
	local conn = open_conn("client.test", "127.0.0.1")
	local m = simple_message(from)
	local r = run_message(conn, m)
	check_untouched(conn, r, "From " .. from .. " (not a signing domain)")
	mt.disconnect(conn)
end
if scenario == nil then finish() end
