-- (c) messages that already carry S/MIME or PGP protection pass untouched.
if tap == nil then dofile(libdir .. "/lib.lua") end

local cases = {
	{ "multipart/signed (S/MIME)",
	  "multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"s1\"",
	  "--s1\r\nContent-Type: text/plain\r\n\r\nhi\r\n--s1\r\n" ..
	  "Content-Type: application/pkcs7-signature; name=smime.p7s\r\n" ..
	  "Content-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHAqCAMIACAQE=\r\n--s1--\r\n" },
	{ "application/pkcs7-mime (S/MIME encrypted)",
	  "application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m",
	  "MIAGCSqGSIb3DQEHA6CAMIACAQAxggE=\r\n" },
	{ "application/x-pkcs7-mime (old S/MIME type)",
	  "application/x-pkcs7-mime; smime-type=signed-data; name=smime.p7m",
	  "MIAGCSqGSIb3DQEHAqCAMIACAQE=\r\n" },
	{ "multipart/encrypted (PGP/MIME)",
	  "multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"e1\"",
	  "--e1\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--e1\r\n" ..
	  "Content-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\n" ..
	  "hQEMA0AAAAAAAAAAAQf/\r\n-----END PGP MESSAGE-----\r\n--e1--\r\n" },
	{ "multipart/signed (PGP/MIME)",
	  "multipart/signed; protocol=\"application/pgp-signature\"; micalg=pgp-sha256; boundary=\"p1\"",
	  "--p1\r\nContent-Type: text/plain\r\n\r\nhi\r\n--p1\r\n" ..
	  "Content-Type: application/pgp-signature\r\n\r\n-----BEGIN PGP SIGNATURE-----\r\n" ..
	  "-----END PGP SIGNATURE-----\r\n--p1--\r\n" },
}
for _, c in ipairs(cases) do
	local conn = open_conn("client.test", "127.0.0.1")
	local m = simple_message("andi@banjarkota.go.id", {
		{ "MIME-Version", "1.0" },
		{ "Content-Type", c[2] },
	}, c[3])
	if c[2]:find("^application/") then
		m.headers[#m.headers + 1] = { "Content-Transfer-Encoding", "base64" }
	end
	local r = run_message(conn, m)
	check_untouched(conn, r, "already protected: " .. c[1])
	mt.disconnect(conn)
end
if scenario == nil then finish() end
