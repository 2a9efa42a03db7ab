#!/bin/sh
# The seeds and regressions of the inbound fuzz target (issue 13) in
# `make check`: tests/lib/fuzz_replay_inbound (tests/fuzz/fuzz_inbound.c
# without libFuzzer, built by test-bins with the normal flags, so also
# under SANITIZE=1) runs each file of tests/fuzz/mkseeds-inbound.sh's
# output and of tests/fuzz/regress-inbound/ on both of the target's
# snapshots, in the environment of tests/fuzz/mkenv.sh.  One check per
# file: the target's invariants hold (it aborts otherwise: inb_eom never
# fails, nothing written unless body_replaced, chunks <= 64 KiB, well
# formed edits, an RFC 7281 result); for a seed also that it reaches what
# it was made for (decrypted with which cipher, pass, fail and why,
# permerror and why), so a seed that silently stops reaching decryption
# fails here.  Plus one check that no sanitizer spoke.  A file named in
# tests/fuzz/KNOWN (an open bug outside the fuzz harness) is skipped when
# it fails, and listed.  Prints TAP.
. "${TOP:-$(dirname "$0")/../..}/tests/lib/fixture.sh"
fx_begin finb
replay=$TOP/tests/lib/fuzz_replay_inbound
[ -x "$replay" ] || bail "tests/lib/fuzz_replay_inbound is built (make test-bins)"
sh "$TOP/tests/fuzz/mkenv.sh" "$work" || bail "test PKI and configuration built"
sh "$TOP/tests/fuzz/mkseeds-inbound.sh" "$work" "$work/seeds" ||
	bail "tests/fuzz/mkseeds-inbound.sh made the seeds"
export FUZZ_EOM_CONF=$work/m.conf FUZZ_INBOUND_REPORT=1

# want NAME: the report of snapshot 0 and of snapshot 1 (defaults; unwrap,
# Subject tag, on_bad_signature = reject) must match these EREs
D='smime=none action=decrypted decrypted=1 replaced=1 reject=0'
P='smime=permerror action=not-decrypted decrypted=0 replaced=0'
V='smime=permerror action=verify-failed decrypted=0 replaced=0'
F='smime=fail action=verify-failed decrypted=0 replaced=0'
want() {
	w0= w1=
	case $1 in
	enc-cbc | enc-x-pkcs7 | enc-no-smime-type | enc-oaep | enc-ski | enc-ec | enc-two-recips)
		w0="$D .*cipher=AES-256-CBC " ;;
	enc-aes128) w0="$D .*cipher=AES-128-CBC " ;;
	enc-3des) w0="$D .*cipher=DES-EDE3-CBC " ;;
	enc-gcm | enc-sekda) w0="$D .*cipher=AES-256-GCM " ;;
	enc-andi-budi) w0='smime=none action=not-decrypted .*reason=budi@banjarkota.go.id is not a recipient' ;;
	enc-andi-sekda) w0='smime=none action=not-decrypted .*reason=sekda@banjarkota.go.id is not a recipient' ;;
	enc-not-to-us) w0='smime=none action=not-decrypted .*reason=andi@banjarkota.go.id is not a recipient' ;;
	enc-binary) w0="$P .*reason=malformed encrypted message" ;;
	signed | signed-x-pkcs7) w0='smime=pass action=verified decrypted=0 replaced=0 reject=0' ;;
	signed-tampered) w0="$F reject=0 .*reason=body altered" w1="$F reject=1 " ;;
	signed-other-from) w0="$F .*not the From address" w1="$F reject=1 " ;;
	signed-revoked) w0="$F .*reason=certificate revoked" w1="$F reject=1 " ;;
	signed-unknown-ca) w0="$F .*reason=issuer not trusted" w1="$F reject=1 " ;;
	opaque) w0='smime=pass action=verified decrypted=0 replaced=0 ' w1='smime=pass action=verified decrypted=0 replaced=1 ' ;;
	sig-enc | opaque-enc) w0='smime=pass action=decrypted decrypted=1 replaced=1 .*cipher=AES-256-CBC ' ;;
	sig-enc-gcm-oaep) w0='smime=pass action=decrypted decrypted=1 replaced=1 .*cipher=AES-256-GCM ' ;;
	sig-enc-tampered) w0='smime=fail action=decrypted decrypted=1 replaced=1 reject=0 .*reason=body altered' w1='smime=fail action=decrypted decrypted=1 replaced=0 reject=1 ' ;;
	trunc-line) w0="$P .*reason=truncated CMS" ;;
	trunc-quad | bad-char) w0="$P .*reason=malformed base64" ;;
	garbage | len-set | len-key | len-of-len | deep-der) w0="$P .*reason=malformed encrypted message: malformed CMS" ;;
	not-der) w0="$P .*reason=malformed encrypted message: not a CMS" ;;
	len-outer) w0="$P .*reason=cannot decrypt: truncated CMS" ;;
	deep-opaque) w0="$V .*reason=signed-data does not parse" ;;
	empty | signed-empty) w0="$V .*reason=empty S/MIME body" ;;
	nested | deep-mime) w0="$V .*reason=S/MIME part nested inside a multipart" ;;
	signed-no-close) w0="$V .*reason=multipart/signed is cut short" ;;
	forged-ar) w0='smime=none action=- .* ar_deleted=2 ' ;;
	forged-ar-enc) w0='smime=pass action=decrypted .* ar_deleted=1 ' ;;
	*) return 1 ;;
	esac
	[ -n "$w1" ] || w1=$w0
	return 0
}

# tests/fuzz/KNOWN: "FILE reason" lines (as fuzz-invariant.sh reads them)
known() {
	known_why=$(awk -v f="$1" '$1 == f { $1 = ""; sub(/^ /, ""); print; exit }' \
		"$TOP/tests/fuzz/KNOWN" 2>/dev/null)
	[ -n "$known_why" ]
}

nseeds=0
for f in "$work"/seeds/*.eml "$TOP"/tests/fuzz/regress-inbound/*; do
	[ -f "$f" ] || continue
	tag=$(basename "$f")
	log=$work/$tag.log
	"$replay" "$f" >"$log" 2>&1
	rc=$?
	if [ $rc -ne 0 ] && known "$tag"; then
		ok "$tag: # SKIP known issue: $known_why"
		continue
	elif [ $rc -ne 0 ]; then
		nok "$tag: the invariants of fuzz_inbound hold (exit $rc)"
		grep -v '^==' "$log" | head -8 | sed 's/^/#   /'
		continue
	fi
	case $f in
	"$work"/seeds/*)
		nseeds=$((nseeds + 1))
		name=${tag#i-}
		name=${name%.eml}
		if ! want "$name"; then
			nok "$tag: the test knows what this seed must give"
			continue
		fi
		if grep -qE "^inbound 0: $w0" "$log" && grep -qE "^inbound 1: $w1" "$log"; then
			ok "$tag: invariants hold, $(sed -n 's/^inbound 0: \(smime=[^ ]* action=[^ ]*\).*/\1/p' "$log")"
		else
			nok "$tag: invariants hold, and snapshot 0 gives /$w0/, snapshot 1 /$w1/"
			grep '^inbound' "$log" | sed 's/^/#   /'
		fi
		;;
	*) ok "$tag: the invariants of fuzz_inbound hold (regression)" ;;
	esac
done
[ "$nseeds" -ge 44 ] && ok "the seed builder made $nseeds seeds" ||
	nok "the seed builder made at least 44 seeds (made $nseeds)"
fx_no_sanitizer "no sanitizer report while replaying" "$work"/*.log
echo "1..$n"
