package pki

import (
	"net"
	"net/mail"
	"net/url"
	"strings"
)

// Kinds of name a certificate holds, as SortNames files them.
const (
	NameCN    = "cn" // the subject's common name
	NameDNS   = "dns"
	NameIP    = "ip"
	NameURI   = "uri"
	NameEmail = "email"
)

// NameKind says which SAN a name becomes: an IP address, a URI (a
// scheme and "://"), an email address (an "@" that parses), else a DNS
// name. The client sorts a request's names, and the CA a certificate's,
// by this one rule, so a name lands in the same field on both sides and
// an allow pattern judges the field it lands in.
func NameKind(n string) string {
	if net.ParseIP(n) != nil {
		return NameIP
	}
	if u, err := url.Parse(n); err == nil && u.Scheme != "" && strings.Contains(n, "://") {
		return NameURI
	}
	if _, err := mail.ParseAddress(n); err == nil && strings.Contains(n, "@") {
		return NameEmail
	}
	return NameDNS
}

// SANs are names sorted into X.509's subject alternative name fields.
type SANs struct {
	DNSNames       []string
	EmailAddresses []string
	IPAddresses    []net.IP
	URIs           []*url.URL
}

// SortNames files each name under its NameKind, in order.
func SortNames(names []string) SANs {
	var s SANs
	for _, n := range names {
		switch NameKind(n) {
		case NameIP:
			s.IPAddresses = append(s.IPAddresses, net.ParseIP(n))
		case NameURI:
			u, _ := url.Parse(n) // NameKind parsed it
			s.URIs = append(s.URIs, u)
		case NameEmail:
			s.EmailAddresses = append(s.EmailAddresses, n)
		default:
			s.DNSNames = append(s.DNSNames, n)
		}
	}
	return s
}
