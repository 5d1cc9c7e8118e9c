package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/keyless-dev/keyless/internal/iampolicy"
)

// A profile's session policies: its sessionPolicy (an inline policy) and
// managedPolicyArns. Roles Anywhere hands them to STS when it issues a
// session (AssumeRole's Policy and PolicyArns: "You use profiles to
// intersect permissions with IAM managed policies"), so STS's limits are
// theirs: at most 10 managed policy ARNs of the role's account (or AWS's),
// at most 2,048 characters of plain text for the inline and managed
// session policies together, and a packed size (policies compressed into
// STS's binary format) within STS's allotment, which AssumeRole reports as
// PackedPolicySize, a percentage.
//
// The emulator checks them and reports the packed size; nothing in it
// evaluates a session's permissions (its STS answers only
// GetCallerIdentity, which needs none, and issued credentials cannot call
// the control plane), so the policies are stored and limited, not
// applied.

// STS's limits on session policies (AssumeRole: PolicyArns, Policy,
// PackedPolicySize).
const (
	// maxSessionPolicyARNs: "You can provide up to 10 managed policy ARNs."
	maxSessionPolicyARNs = 10
	// maxSessionPolicyChars: "the plaintext that you use for both inline
	// and managed session policies can't exceed 2,048 characters."
	maxSessionPolicyChars = 2048
	// maxProfileSessionPolicyChars is UpdateProfile's model bound on
	// sessionPolicy (UpdateProfileRequestSessionPolicyString).
	maxProfileSessionPolicyChars = 100000
)

// sessionPolicyMessage is STS's answer for an inline session policy it
// cannot parse (MalformedPolicyDocument).
const sessionPolicyMessage = "Syntax errors in policy."

// checkSessionPolicyText checks an inline session policy on its own: the
// characters STS takes (sessionPolicyDocumentType: tab, line feed,
// carriage return and U+0020 to U+00FF) and the grammar of an identity
// policy (no Principal; every statement names its resources), which is
// what a session policy is.
func checkSessionPolicyText(doc string) error {
	for i, r := range doc {
		if r == utf8.RuneError || !(r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0xFF) {
			return fmt.Errorf("character %q at byte %d is outside what STS takes in a session policy (tab, line feed, carriage return, U+0020 to U+00FF)", r, i)
		}
	}
	if _, err := iampolicy.ParseIdentityPolicy([]byte(doc)); err != nil {
		return err
	}
	return nil
}

// errPolicyNotFound marks a managed policy ARN that names no policy the
// role's session could use.
var errPolicyNotFound = errors.New("no such managed policy")

// checkSessionPolicyARN checks that arn names a managed policy a session
// of a role in account (of partition) may use: STS requires the policies
// to "exist in the same account as the role", and AWS's own managed
// policies (arn:PARTITION:iam::aws:policy/...) are usable in every
// account. The emulator has no store of managed policies (IAM's
// CreatePolicy is not served), so, as for AttachRolePolicy, every
// well-formed policy ARN of the account or of AWS counts as existing:
// refusing names the emulator has not seen would refuse AWS's hundreds of
// managed policies and every customer policy made outside the emulator.
// Policies of another account or partition cannot exist for the session
// and are refused.
func checkSessionPolicyARN(arn, partition, account string) error {
	if !validPolicyARN(arn) {
		return fmt.Errorf("%q is not a managed policy ARN (arn:%s:iam::%s:policy/NAME, or arn:%s:iam::aws:policy/NAME for AWS's)", truncate(arn), partition, account, partition)
	}
	parts := strings.SplitN(arn, ":", 6)
	if parts[1] != partition || (parts[4] != "aws" && parts[4] != account) {
		return fmt.Errorf("%w: %s is not AWS's (arn:%s:iam::aws:policy/...) nor of account %s; STS takes a session's managed policies only from the role's account", errPolicyNotFound, truncate(arn), partition, account)
	}
	return nil
}

// sessionPolicyLimit is a broken STS limit, with the field it concerns.
type sessionPolicyLimit struct {
	field   string // "managedPolicyArns" or "sessionPolicy"
	message string // AWS's words
	rule    string // the detail, for the emulator's explanation
	packed  bool   // the packed size is over STS's allotment
}

func (l *sessionPolicyLimit) Error() string { return l.message + " (" + l.rule + ")" }

// checkSessionPolicyLimits applies STS's limits on what a session is
// given: the number of managed policy ARNs, the plain text of the inline
// policy and the ARNs together, and the packed size. It returns the
// packed size as a percentage of STS's allotment, or the broken limit.
func checkSessionPolicyLimits(doc string, arns []string) (int, *sessionPolicyLimit) {
	if n := len(arns); n > maxSessionPolicyARNs {
		return 0, &sessionPolicyLimit{field: "managedPolicyArns",
			message: fmt.Sprintf("1 validation error detected: Value at 'policyArns' failed to satisfy constraint: Member must have length less than or equal to %d", maxSessionPolicyARNs),
			rule:    fmt.Sprintf("%d managed policy ARNs; STS's AssumeRole takes at most %d (PolicyArns)", n, maxSessionPolicyARNs)}
	}
	if n := sessionPolicyPlainChars(doc, arns); n > maxSessionPolicyChars {
		return 0, &sessionPolicyLimit{field: "sessionPolicy",
			message: fmt.Sprintf("1 validation error detected: Value at 'sessionPolicy' failed to satisfy constraint: Member must have length less than or equal to %d", maxSessionPolicyChars),
			rule:    fmt.Sprintf("the session policy and the managed policy ARNs are %d characters of plain text; STS takes at most %d for inline and managed session policies together", n, maxSessionPolicyChars)}
	}
	size := packedPolicySize(doc, arns)
	if size > 100 {
		return size, &sessionPolicyLimit{field: "sessionPolicy", packed: true,
			message: fmt.Sprintf("Packed policy consumes %d%% of allotted space", size),
			rule:    "STS's PackedPolicyTooLarge: the session policy and managed policy ARNs, packed, are over STS's limit; use fewer actions (wildcards), conditions or managed policies"}
	}
	return size, nil
}

// sessionPolicyPlainChars counts the plain text STS limits to 2,048
// characters: the inline policy as given and each managed policy ARN.
// (AWS's words, "the plaintext that you use for both inline and managed
// session policies", do not say whether the ARNs count; the emulator takes
// the stricter reading that they do.)
func sessionPolicyPlainChars(doc string, arns []string) int {
	n := utf8.RuneCountInString(doc)
	for _, a := range arns {
		n += utf8.RuneCountInString(a)
	}
	return n
}

// The packed size. AWS does not document STS's packed format or its
// allotment, only that the session policies (and session tags) are
// "compressed into a packed binary format that has a separate limit" and
// that PackedPolicySize gives the percentage of it used. The emulator
// approximates it:
//
//   - the inline policy is read as JSON and each value costs what a
//     compact binary encoding would: an object or array 1 byte, a
//     policy-grammar word (element names such as "Statement" and "Action",
//     "Allow"/"Deny", the two versions, principal kinds, condition
//     operators) 1 byte, any other string its UTF-8 length plus 1, a
//     number, true, false or null its literal length; insignificant
//     whitespace costs nothing;
//   - each managed policy ARN costs its length plus 1;
//   - anything at all costs a fixed packedOverhead;
//   - the percentage is 100 × bytes / packedAllotment, rounded to the
//     nearest whole percent (no policies: 0).
//
// packedAllotment and packedOverhead are calibrated on published STS
// answers: AWS's AssumeRole example (a one-statement "s3:*" policy, 6%),
// and third-party reports of refusals for action-heavy policies (18 EC2
// actions in 736 characters with three session tags, 82%; 42 actions in
// 1,690 characters, 157%), which show the packed limit binding well
// before 2,048 characters when a policy lists many actions. Certificate
// attributes that Roles Anywhere maps to principal tags are not counted:
// AWS's CreateSession answers packedPolicySize 0 for a profile without
// session policies whatever the certificate's subject.
const (
	packedAllotment = 850
	packedOverhead  = 30
)

// packedPolicySize is the emulator's approximation of STS's
// PackedPolicySize for an inline session policy and managed policy ARNs.
func packedPolicySize(doc string, arns []string) int {
	if doc == "" && len(arns) == 0 {
		return 0
	}
	n := packedOverhead + packedDocumentBytes(doc)
	for _, a := range arns {
		n += len(a) + 1
	}
	return (n*100 + packedAllotment/2) / packedAllotment
}

// packedDocumentBytes is the packed cost of a policy document (see
// packedPolicySize). A document that is not JSON is counted as its bytes;
// it never reaches STS, as checkSessionPolicyText refuses it first.
func packedDocumentBytes(doc string) int {
	if doc == "" {
		return 0
	}
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	n := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return n
		}
		if err != nil {
			return len(doc)
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				n++
			}
		case string:
			if packedWords.has(v) {
				n++
			} else {
				n += len(v) + 1
			}
		case json.Number:
			n += len(v)
		case bool:
			n += len(fmt.Sprint(v))
		case nil:
			n += len("null")
		}
	}
}

// packedWords are the words of the policy grammar, which a packed format
// encodes as tokens rather than text.
var packedWords = lazyWordSet{words: `Version Id Statement Sid Effect Principal NotPrincipal Action NotAction
	Resource NotResource Condition Allow Deny 2012-10-17 2008-10-17 AWS Service Federated CanonicalUser
	StringEquals StringNotEquals StringEqualsIgnoreCase StringNotEqualsIgnoreCase StringLike StringNotLike
	NumericEquals NumericNotEquals NumericLessThan NumericLessThanEquals NumericGreaterThan NumericGreaterThanEquals
	DateEquals DateNotEquals DateLessThan DateLessThanEquals DateGreaterThan DateGreaterThanEquals
	Bool BinaryEquals IpAddress NotIpAddress ArnEquals ArnLike ArnNotEquals ArnNotLike Null`}

// lazyWordSet is a set of words made into a map on first use, not in
// every keyless command's package init.
type lazyWordSet struct {
	words string
	once  sync.Once
	set   map[string]bool
}

func (l *lazyWordSet) has(w string) bool {
	l.once.Do(func() {
		l.set = map[string]bool{}
		for _, w := range strings.Fields(l.words) {
			l.set[w] = true
		}
	})
	return l.set[w]
}

// sessionPolicies applies a profile's session policies to a session about
// to be issued for role: STS's limits (refused as Roles Anywhere refuses
// a request STS would not take: 400 ValidationException, with STS's
// words) and the policies' existence. It returns the packed size for the
// answer's packedPolicySize.
func (e *Emulator) sessionPolicies(profile *Profile, role *Role) (int, *apiError) {
	// The limits first: they are cheap, and they bound what the parse
	// below reads (UpdateProfile takes session policies of up to
	// 100,000 characters).
	size, limit := checkSessionPolicyLimits(profile.SessionPolicy, profile.ManagedPolicyARNs)
	if limit != nil {
		return 0, &apiError{status: http.StatusBadRequest, code: "ValidationException", message: limit.message,
			rule: fmt.Sprintf("profile %s: %s", profile.Name, limit.rule)}
	}
	if profile.SessionPolicy != "" {
		if err := checkSessionPolicyText(profile.SessionPolicy); err != nil {
			return 0, &apiError{status: http.StatusBadRequest, code: "ValidationException", message: sessionPolicyMessage,
				rule: fmt.Sprintf("session policy of profile %s: %v", profile.Name, err)}
		}
	}
	for _, a := range profile.ManagedPolicyARNs {
		if err := checkSessionPolicyARN(a, e.st.partition, e.st.account); err != nil {
			return 0, &apiError{status: http.StatusBadRequest, code: "ValidationException",
				message: fmt.Sprintf("Policy %s does not exist or is not attachable.", truncate(a)),
				rule:    fmt.Sprintf("profile %s, role %s: %v", profile.Name, role.Name, err)}
		}
	}
	return size, nil
}

// profilePolicies checks a seed profile's session policies as
// CreateSession would (profile i): each managed policy ARN names a policy
// of the seed's account or of AWS, at most 10 of them, a session policy
// STS can parse, and at most 2,048 characters of plain text together. A
// seed profile that breaks them could never issue a session, so the seed
// does not load. The packed size is reported, and refused, at
// CreateSession, as the control plane does.
func (p *seedParser) profilePolicies(i int, rp rawProfile, s *Seed) error {
	for j, a := range rp.ManagedPolicyArns {
		if len(a) > maxPolicyARNChars {
			return p.fail(fmt.Errorf("the ARN is %d characters; Roles Anywhere takes at most %d", len(a), maxPolicyARNChars), "profiles", i, "managedPolicyArns", j)
		}
		if err := checkSessionPolicyARN(a, s.Partition, s.Account); err != nil {
			return p.fail(err, "profiles", i, "managedPolicyArns", j)
		}
	}
	if n := len(rp.ManagedPolicyArns); n > maxSessionPolicyARNs {
		return p.fail(fmt.Errorf("%d managed policy ARNs; a session takes at most %d (STS AssumeRole PolicyArns), so this profile could never issue one", n, maxSessionPolicyARNs), "profiles", i, "managedPolicyArns")
	}
	if rp.SessionPolicy != "" {
		if err := checkSessionPolicyText(rp.SessionPolicy); err != nil {
			return p.fail(fmt.Errorf("not a session policy STS accepts: %w", err), "profiles", i, "sessionPolicy")
		}
	}
	if n := sessionPolicyPlainChars(rp.SessionPolicy, rp.ManagedPolicyArns); n > maxSessionPolicyChars {
		return p.fail(fmt.Errorf("the session policy and managed policy ARNs are %d characters of plain text; STS takes at most %d for a session's inline and managed session policies together", n, maxSessionPolicyChars), "profiles", i, "sessionPolicy")
	}
	return nil
}
