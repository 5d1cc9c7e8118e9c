package testkit

import (
	"encoding/asn1"
	"testing"
)

// EditCertificate rewrites a DER certificate for tests of the rules that
// read one: edit changes the elements of its TBSCertificate in place
// (version [0], serial, signature algorithm, issuer, validity, subject,
// SubjectPublicKeyInfo, ...); outerAlg, when not nil, is the DER of the
// outer signature algorithm; sign, when not nil, signs the new
// TBSCertificate, else the old signature is kept.
func EditCertificate(t testing.TB, der []byte, edit func(elems []asn1.RawValue), outerAlg []byte, sign func(tbs []byte) []byte) []byte {
	t.Helper()
	var outer struct {
		TBS       asn1.RawValue
		Algorithm asn1.RawValue
		Signature asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &outer); err != nil {
		t.Fatal(err)
	}
	var elems []asn1.RawValue
	for rest := outer.TBS.Bytes; len(rest) > 0; {
		var e asn1.RawValue
		var err error
		if rest, err = asn1.Unmarshal(rest, &e); err != nil {
			t.Fatal(err)
		}
		elems = append(elems, e)
	}
	edit(elems)
	var body []byte
	for _, e := range elems {
		body = append(body, e.FullBytes...)
	}
	tbs, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: body})
	if err != nil {
		t.Fatal(err)
	}
	alg := outer.Algorithm.FullBytes
	if outerAlg != nil {
		alg = outerAlg
	}
	sig := outer.Signature
	if sign != nil {
		b := sign(tbs)
		sig = asn1.BitString{Bytes: b, BitLength: 8 * len(b)}
	}
	out, err := asn1.Marshal(struct {
		TBS       asn1.RawValue
		Algorithm asn1.RawValue
		Signature asn1.BitString
	}{asn1.RawValue{FullBytes: tbs}, asn1.RawValue{FullBytes: alg}, sig})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
