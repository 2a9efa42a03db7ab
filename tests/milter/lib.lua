-- tests/milter/lib.lua -- helpers shared by the miltertest scenarios.
-- The driver (tests/milter/scenarios.sh) runs
--   miltertest -s lib.lua -D sock=inet:PORT@127.0.0.1 -D libdir=DIR -D scenario=FILE
-- and this file runs FILE at its end.  A scenario can also be run alone with
--   miltertest -s FILE -D sock=... -D libdir=DIR   (it loads lib.lua itself).
-- Output: "ok - TEXT" / "not ok - TEXT" / "# TEXT" lines; the driver numbers
-- the TAP lines.

if sock == nil then
	error("run with -D sock=inet:PORT@127.0.0.1")
end

local reply_names = {}
for _, n in ipairs({ "SMFIR_ADDRCPT", "SMFIR_DELRCPT", "SMFIR_ACCEPT",
	"SMFIR_REPLBODY", "SMFIR_CONTINUE", "SMFIR_DISCARD", "SMFIR_CHGHEADER",
	"SMFIR_PROGRESS", "SMFIR_REJECT", "SMFIR_TEMPFAIL", "SMFIR_ADDHEADER",
	"SMFIR_INSHEADER", "SMFIR_REPLYCODE", "SMFIR_QUARANTINE", "SMFIR_SKIP",
	"SMFIR_CHGFROM", "SMFIR_SETSYMLIST" }) do
	if _G[n] ~= nil then
		reply_names[_G[n]] = n
	end
end

function reply_name(r)
	if r == nil then
		return "nil"
	end
	return reply_names[r] or string.format("reply %q", string.char(r))
end

function diag(s)
	for line in (tostring(s) .. "\n"):gmatch("([^\n]*)\n") do
		mt.echo("# " .. line)
	end
end

failures = 0
function tap(cond, desc)
	if cond then
		mt.echo("ok - " .. desc)
	else
		mt.echo("not ok - " .. desc)
		failures = failures + 1
	end
	return cond
end

-- open_conn(host, ip): connect to the filter and announce the SMTP client
function open_conn(host, ip)
	local conn = mt.connect(sock, 40, 0.25)
	if conn == nil then
		error("mt.connect(" .. sock .. ") failed")
	end
	local err = mt.conninfo(conn, host, ip)
	if err ~= nil then
		error("mt.conninfo() failed: " .. err)
	end
	return conn
end

-- run_message(conn, m) drives one message through the filter.
-- m = { from = "a@b", rcpt = { "x@y" }, mailmacros = { name, value, ... },
--       headers = { { "From", "a@b" }, ... }, body = "CRLF text" or nil,
--       qid = "QUEUEID", no_eom = true to stop after the body }
-- Returns r = { stage = where the filter's verdict came ("connect",
-- "mailfrom", "rcptto", "header", "eoh", "body", "eom"), reply = that
-- reply, eom = true when the message got to end-of-message }.
function run_message(conn, m)
	local r = { eom = false }
	local function opt(o)
		return o ~= nil and mt.test_option(conn, o)
	end
	-- step(stage, err, noreply_option)
	local function step(stage, err, nr)
		if err ~= nil then
			error("mt." .. stage .. "() failed: " .. err)
		end
		r.stage = stage
		if opt(nr) then
			r.reply = SMFIR_CONTINUE -- the filter asked not to reply here
		else
			r.reply = mt.getreply(conn)
		end
		return r.reply == SMFIR_CONTINUE
	end
	local macros = { "i", m.qid or "TESTQID01" }
	for _, v in ipairs(m.mailmacros or {}) do
		macros[#macros + 1] = v
	end
	mt.macro(conn, SMFIC_MAIL, table.unpack(macros))
	if not opt(SMFIP_NOMAIL) then
		if not step("mailfrom", mt.mailfrom(conn, m.from), SMFIP_NR_MAIL) then
			return r
		end
	end
	if not opt(SMFIP_NORCPT) then
		for _, rc in ipairs(m.rcpt or { "<someone@example.org>" }) do
			if not step("rcptto", mt.rcptto(conn, rc), SMFIP_NR_RCPT) then
				return r
			end
		end
	end
	if not opt(SMFIP_NOHDRS) then
		for _, h in ipairs(m.headers) do
			if not step("header", mt.header(conn, h[1], h[2]), SMFIP_NR_HDR) then
				return r
			end
		end
	end
	if not opt(SMFIP_NOEOH) then
		if not step("eoh", mt.eoh(conn), SMFIP_NR_EOH) then
			return r
		end
	end
	if m.body ~= nil and m.body ~= "" and not opt(SMFIP_NOBODY) then
		-- chunks of at most 64 KiB, as an MTA sends them
		local pos = 1
		while pos <= #m.body do
			if not step("body", mt.bodystring(conn, m.body:sub(pos, pos + 65535 - 1)), SMFIP_NR_BODY) then
				return r
			end
			pos = pos + 65535
		end
	end
	if m.no_eom then
		return r -- the caller aborts or disconnects here
	end
	local err = mt.eom(conn)
	if err ~= nil then
		error("mt.eom() failed: " .. err)
	end
	r.stage = "eom"
	r.eom = true
	r.reply = mt.getreply(conn)
	return r
end

-- modified(conn, r): true if any modification was requested at eom
function modified(conn, r)
	if not r.eom then
		return false
	end
	return mt.eom_check(conn, MT_BODYCHANGE) or mt.eom_check(conn, MT_HDRCHANGE)
		or mt.eom_check(conn, MT_HDRDELETE) or mt.eom_check(conn, MT_HDRADD)
		or mt.eom_check(conn, MT_HDRINSERT) or mt.eom_check(conn, MT_RCPTADD)
		or mt.eom_check(conn, MT_RCPTDELETE) or mt.eom_check(conn, MT_QUARANTINE)
end

-- check_untouched(conn, r, name): the message passes with no change
function check_untouched(conn, r, name)
	local passed = (r.reply == SMFIR_ACCEPT) or
		(r.eom and r.reply == SMFIR_CONTINUE)
	if not tap(passed, name .. ": passes (reply " .. reply_name(r.reply) .. " at " .. tostring(r.stage) .. ")") then
		diag("expected SMFIR_ACCEPT, or SMFIR_CONTINUE at end of message")
	end
	local mod = modified(conn, r)
	tap(not mod, name .. ": no modification requested")
	if mod then
		diag("body changed: " .. tostring(mt.eom_check(conn, MT_BODYCHANGE)) ..
			", header changed/deleted/added: " ..
			tostring(mt.eom_check(conn, MT_HDRCHANGE)) .. "/" ..
			tostring(mt.eom_check(conn, MT_HDRDELETE)) .. "/" ..
			tostring(mt.eom_check(conn, MT_HDRADD) or mt.eom_check(conn, MT_HDRINSERT)))
	end
end

-- check_untouched_alone(host, ip, m, name): message M on a connection of
-- its own from HOST [IP] passes with no change (check_untouched)
function check_untouched_alone(host, ip, m, name)
	local conn = open_conn(host, ip)
	check_untouched(conn, run_message(conn, m), name)
	mt.disconnect(conn)
end

-- added_header(conn, name): value of the first header NAME added at eom
function added_header(conn, name)
	for i = 0, 3 do
		local v = mt.getheader(conn, name, i)
		if v ~= nil then
			return v
		end
	end
	return nil
end

-- removed(conn, name): header NAME deleted (or changed) at eom
function removed(conn, name)
	return mt.eom_check(conn, MT_HDRDELETE, name) or mt.eom_check(conn, MT_HDRCHANGE, name)
end

-- sign_up_to_eom(conn, m, name): a message the filter must sign.  Debian
-- 12's miltertest overflows its stack when a filter replaces the body with
-- more than ~1 KiB (OpenDKIM issue #66), and a signed body always does, so
-- the message is driven only up to the end of the body: the filter must ask
-- for the whole body (SMFIR_CONTINUE everywhere), then the transaction is
-- aborted.  What the filter does at end of message is checked by
-- tests/milter/signing.sh with tests/lib/miltercli.py.
function sign_up_to_eom(conn, m, name)
	m.no_eom = true
	local r = run_message(conn, m)
	local wants = r.reply == SMFIR_CONTINUE and (r.stage == "body" or r.stage == "eoh")
	if not tap(wants, name .. ": filter wants the body for signing (reply " ..
		reply_name(r.reply) .. " at " .. tostring(r.stage) .. ")") then
		diag("an SMFIR_ACCEPT here means the message would pass unsigned")
	end
	local err = mt.abort(conn)
	if err ~= nil then
		diag("mt.abort() failed: " .. err)
	end
	return wants
end

-- a plain message from ADDR
function simple_message(addr, extra_headers, body)
	local h = {
		{ "From", addr },
		{ "To", "someone@example.org" },
		{ "Subject", "miltertest scenario" },
		{ "Date", "Tue, 24 Nov 2026 10:00:00 +0700" },
		{ "Message-ID", "<mt-" .. tostring(math.random(1, 1000000000)) .. "@banjarkota.go.id>" },
	}
	for _, x in ipairs(extra_headers or {
		{ "MIME-Version", "1.0" },
		{ "Content-Type", "text/plain; charset=utf-8" },
		{ "Content-Transfer-Encoding", "8bit" },
	}) do
		h[#h + 1] = x
	end
	local from = addr:match("<([^>]+)>") or addr
	return {
		from = "<" .. from .. ">",
		headers = h,
		body = body or "Selamat pagi \226\128\147 caf\195\169.\r\nLine two.\r\n",
	}
end

-- simple_message(ADDR) with the queue id QID
function qid_message(addr, qid)
	local m = simple_message(addr)
	m.qid = qid
	return m
end

function finish()
	if failures > 0 then
		diag(failures .. " check(s) failed in this script")
	end
end

-- Run by the driver as `miltertest -s lib.lua -D scenario=FILE ...`: run the
-- scenario and turn a Lua error (which miltertest does not print) into a
-- failed check.
if scenario ~= nil then
	local ok, err = pcall(dofile, scenario)
	if not ok then
		tap(false, "scenario " .. scenario:match("[^/]*$") .. " ran to the end")
		diag(tostring(err))
	end
	finish()
end
