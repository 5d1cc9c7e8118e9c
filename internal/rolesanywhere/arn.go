// Package rolesanywhere is the client of IAM Roles Anywhere's CreateSession
// API: it validates ARNs and endpoints, signs each attempt with SigV4-X509,
// retries what is worth retrying, and turns AWS's answers into credentials
// or into one clear error. It knows nothing of files or of the CLI; the
// credential-process command and (later) the agent are built on it.
package rolesanywhere

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// ARN is a parsed Amazon Resource Name.
type ARN struct {
	Partition, Service, Region, Account, Resource string
}

func (a ARN) String() string {
	return "arn:" + a.Partition + ":" + a.Service + ":" + a.Region + ":" + a.Account + ":" + a.Resource
}

// ErrInvalidARN means an ARN does not parse or is not of the expected kind.
var ErrInvalidARN = errors.New("invalid ARN")

// The validators below are written out rather than package-level regexps:
// keyless runs once per AWS CLI command, and compiling regexps at start-up
// cost about 2 ms of every run.

func isLower(c byte) bool  { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return isLower(c) || c >= 'A' && c <= 'Z' }

// isNameChar reports whether c is in [\w+=,.@-], the IAM name alphabet.
func isNameChar(c byte) bool {
	return isLetter(c) || isDigit(c) || strings.IndexByte("_+=,.@-", c) >= 0
}

func allOf(s string, min, max int, ok func(byte) bool) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

// validPartition matches aws(-[a-z]+)*.
func validPartition(s string) bool {
	parts := strings.Split(s, "-")
	if parts[0] != "aws" {
		return false
	}
	for _, p := range parts[1:] {
		if !allOf(p, 1, 32, isLower) {
			return false
		}
	}
	return true
}

func validAccount(s string) bool { return allOf(s, 12, 12, isDigit) }

// ValidAccount reports whether s is a 12-digit AWS account id.
func ValidAccount(s string) bool { return validAccount(s) }

// ValidRoleName reports whether s is an IAM role name: [\w+=,.@-]{1,64}.
func ValidRoleName(s string) bool { return allOf(s, 1, 64, isNameChar) }

// ValidResourceName reports whether s can name a Roles Anywhere trust
// anchor or profile: [ a-zA-Z0-9_-]{1,255}.
func ValidResourceName(s string) bool {
	return allOf(s, 1, 255, func(c byte) bool { return isLetter(c) || isDigit(c) || c == ' ' || c == '_' || c == '-' })
}

func validID(s string) bool {
	return allOf(s, 1, 64, func(c byte) bool { return isLetter(c) || isDigit(c) || c == '-' })
}

// validRoleResource matches role/[PATH/]NAME, NAME being 1 to 64 IAM name
// characters and PATH printable ASCII.
func validRoleResource(s string) bool {
	rest, ok := strings.CutPrefix(s, "role/")
	if !ok {
		return false
	}
	i := strings.LastIndexByte(rest, '/')
	return allOf(rest[:i+1], 0, 512, func(c byte) bool { return c > ' ' && c < 0x7f }) && allOf(rest[i+1:], 1, 64, isNameChar)
}

// ValidSessionName reports whether s is a role session name AWS accepts:
// 2 to 64 characters of letters, digits and +=,.@_-.
func ValidSessionName(s string) bool { return allOf(s, 2, 64, isNameChar) }

// ParseARN splits an ARN into its fields, checking only its shape.
func ParseARN(s string) (ARN, error) {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" {
		return ARN{}, fmt.Errorf("%w %q: want arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE", ErrInvalidARN, s)
	}
	a := ARN{Partition: parts[1], Service: parts[2], Region: parts[3], Account: parts[4], Resource: parts[5]}
	if !validPartition(a.Partition) {
		return ARN{}, fmt.Errorf("%w %q: partition %q is not an AWS partition (aws, aws-cn, aws-us-gov)", ErrInvalidARN, s, a.Partition)
	}
	return a, nil
}

// ValidRegion reports whether region looks like an AWS region name,
// [a-z]{2,}(-[a-z0-9]+)*-[0-9]+ (it becomes part of a host name, so
// nothing else is let through).
func ValidRegion(region string) bool {
	parts := strings.Split(region, "-")
	if len(parts) < 2 || !allOf(parts[0], 2, 32, isLower) || !allOf(parts[len(parts)-1], 1, 3, isDigit) {
		return false
	}
	for _, p := range parts[1 : len(parts)-1] {
		if !allOf(p, 1, 32, func(c byte) bool { return isLower(c) || isDigit(c) }) {
			return false
		}
	}
	return true
}

// ParseTrustAnchorARN parses arn:aws:rolesanywhere:REGION:ACCOUNT:trust-anchor/ID.
func ParseTrustAnchorARN(s string) (ARN, error) { return parseRolesAnywhereARN(s, "trust-anchor") }

// ParseProfileARN parses arn:aws:rolesanywhere:REGION:ACCOUNT:profile/ID.
func ParseProfileARN(s string) (ARN, error) { return parseRolesAnywhereARN(s, "profile") }

func parseRolesAnywhereARN(s, kind string) (ARN, error) {
	want := fmt.Sprintf("want arn:aws:rolesanywhere:REGION:ACCOUNT:%s/ID", kind)
	a, err := ParseARN(s)
	if err != nil {
		return ARN{}, fmt.Errorf("%w; %s", err, want)
	}
	id, ok := strings.CutPrefix(a.Resource, kind+"/")
	switch {
	case a.Service != "rolesanywhere":
		return ARN{}, fmt.Errorf("%w %q: service is %q, not rolesanywhere; %s", ErrInvalidARN, s, a.Service, want)
	case !ok:
		return ARN{}, fmt.Errorf("%w %q: resource %q is not a %s; %s", ErrInvalidARN, s, a.Resource, kind, want)
	case !validID(id):
		return ARN{}, fmt.Errorf("%w %q: %s ID %q is not valid; %s", ErrInvalidARN, s, kind, id, want)
	case !ValidRegion(a.Region):
		return ARN{}, fmt.Errorf("%w %q: region %q is not valid; %s", ErrInvalidARN, s, a.Region, want)
	case !validAccount(a.Account):
		return ARN{}, fmt.Errorf("%w %q: account %q is not 12 digits; %s", ErrInvalidARN, s, a.Account, want)
	}
	return a, nil
}

// ParseRoleARN parses arn:aws:iam::ACCOUNT:role/[PATH/]NAME.
func ParseRoleARN(s string) (ARN, error) {
	const want = "want arn:aws:iam::ACCOUNT:role/NAME"
	a, err := ParseARN(s)
	if err != nil {
		return ARN{}, fmt.Errorf("%w; %s", err, want)
	}
	switch {
	case a.Service != "iam":
		return ARN{}, fmt.Errorf("%w %q: service is %q, not iam; %s", ErrInvalidARN, s, a.Service, want)
	case a.Region != "":
		return ARN{}, fmt.Errorf("%w %q: IAM ARNs have no region; %s", ErrInvalidARN, s, want)
	case !validRoleResource(a.Resource):
		return ARN{}, fmt.Errorf("%w %q: resource %q is not role/NAME; %s", ErrInvalidARN, s, a.Resource, want)
	case !validAccount(a.Account):
		return ARN{}, fmt.Errorf("%w %q: account %q is not 12 digits; %s", ErrInvalidARN, s, a.Account, want)
	}
	return a, nil
}

// DefaultEndpoint returns the public Roles Anywhere endpoint of a region.
func DefaultEndpoint(region string) string {
	suffix := "amazonaws.com"
	if strings.HasPrefix(region, "cn-") {
		suffix = "amazonaws.com.cn"
	}
	return "https://rolesanywhere." + region + "." + suffix
}

// ErrInsecureEndpoint means an endpoint would carry credentials over an
// unencrypted connection that leaves the machine.
var ErrInsecureEndpoint = errors.New("plain HTTP endpoint is not on loopback")

// ParseEndpoint checks an endpoint URL: http or https, a host, no
// credentials, query or fragment. A value without a scheme gets https://,
// as AWS's helper (through the SDK) does. Plain http is accepted only for
// loopback hosts (127.0.0.0/8, ::1, localhost): the response carries AWS
// credentials and the signed request can be replayed for five minutes, so
// neither may cross a network unencrypted. Errors never repeat a password
// the URL may carry.
func ParseEndpoint(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("endpoint is not a URL: %w", redactedURLError(err))
	}
	shown := u.Redacted()
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, fmt.Errorf("endpoint %q: scheme must be https (or http on loopback)", shown)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("endpoint %q: want https://HOST[:PORT][/PATH] with no user, query or fragment", shown)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("endpoint %q: %w: credentials would cross the network unencrypted; use https", shown, ErrInsecureEndpoint)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

// redactedURLError drops the URL (which may hold a password) from a
// url.Parse error, keeping what was wrong with it.
func redactedURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
