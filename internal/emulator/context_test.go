package emulator_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/pki/pkitest"
)

// allowRolesAnywhere lets Roles Anywhere do what it asks for, on no
// condition.
const allowRolesAnywhere = `{"Effect":"Allow","Principal":{"Service":"rolesanywhere.amazonaws.com"},
  "Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"]}`

// guarded is a trust policy that lets Roles Anywhere in unless the
// condition of its Deny statement "Guard" holds.
func guarded(cond string) string {
	return `{"Version":"2012-10-17","Statement":[` + allowRolesAnywhere + `,
  {"Sid":"Guard","Effect":"Deny","Principal":{"Service":"rolesanywhere.amazonaws.com"},"Action":"sts:*","Condition":` + cond + `}]}`
}

// only is a trust policy whose one Allow statement, "Only", holds cond.
func only(cond string) string {
	return `{"Version":"2012-10-17","Statement":[{"Sid":"Only","Effect":"Allow",
  "Principal":{"Service":"rolesanywhere.amazonaws.com"},
  "Action":["sts:AssumeRole","sts:TagSession","sts:SetSourceIdentity"],"Condition":` + cond + `}]}`
}

func iso(t time.Time) string   { return t.UTC().Format(time.RFC3339) }
func epoch(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// TestTrustPolicyContext checks each key of the trust policy's request
// context (see trustpolicy.Context) under the operators a policy uses it with:
// a condition that holds for the value AWS would send refuses (Deny) or
// admits (Allow) the session, and one that does not, does not.
func TestTrustPolicyContext(t *testing.T) {
	const denied = `statement "Guard" denies`
	runner2 := func(e *env) call { return call{leaf: e.leaf(pkitest.LeafOptions{CommonName: "runner-2"})} }
	tests := []struct {
		name   string
		policy func(now time.Time) string
		call   func(e *env) call // nil: the reference call
		want   string            // "": the session is issued; else a substring of the 403 message
	}{
		// aws:CurrentTime, a date, from the emulator's clock.
		{name: "deny after a date that has passed", policy: func(now time.Time) string {
			return guarded(`{"DateGreaterThan":{"aws:CurrentTime":"` + iso(now.Add(-time.Hour)) + `"}}`)
		}, want: denied},
		{name: "deny after a date to come", policy: func(now time.Time) string {
			return guarded(`{"DateGreaterThan":{"aws:CurrentTime":"` + iso(now.Add(time.Hour)) + `"}}`)
		}},
		{name: "allow until a date that has passed", policy: func(now time.Time) string {
			return only(`{"DateLessThan":{"aws:CurrentTime":"` + iso(now.Add(-time.Hour)) + `"}}`)
		}, want: `condition DateLessThan aws:CurrentTime: got "` /* the time, then the bound */},
		{name: "allow until a date to come", policy: func(now time.Time) string {
			return only(`{"DateLessThan":{"aws:CurrentTime":"` + iso(now.Add(time.Hour)) + `"}}`)
		}},
		{name: "current time to the second", policy: func(now time.Time) string {
			return guarded(`{"DateEquals":{"aws:CurrentTime":"` + iso(now) + `"}}`)
		}, want: denied},
		{name: "IfExists does not excuse the current time", policy: func(now time.Time) string {
			return guarded(`{"DateGreaterThanIfExists":{"aws:CurrentTime":"` + iso(now.Add(-time.Hour)) + `"}}`)
		}, want: denied},
		{name: "the current time is present", policy: func(time.Time) string {
			return guarded(`{"Null":{"aws:CurrentTime":"true"}}`)
		}},

		// aws:EpochTime, a number of seconds that date operators read too.
		{name: "epoch past a number", policy: func(now time.Time) string {
			return guarded(`{"NumericGreaterThan":{"aws:EpochTime":` + epoch(now.Add(-time.Hour)) + `}}`)
		}, want: denied},
		{name: "epoch before a number", policy: func(now time.Time) string {
			return guarded(`{"NumericGreaterThan":{"aws:EpochTime":` + epoch(now.Add(time.Hour)) + `}}`)
		}},
		{name: "allow while the epoch is below a number", policy: func(now time.Time) string {
			return only(`{"NumericLessThan":{"aws:EpochTime":"` + epoch(now.Add(time.Hour)) + `"}}`)
		}},
		{name: "allow while the epoch is below a past number", policy: func(now time.Time) string {
			return only(`{"NumericLessThan":{"aws:EpochTime":"` + epoch(now.Add(-time.Hour)) + `"}}`)
		}, want: "condition NumericLessThan aws:EpochTime"},
		{name: "epoch with a date operator", policy: func(now time.Time) string {
			return guarded(`{"DateGreaterThanEquals":{"aws:EpochTime":"` + iso(now) + `"}}`)
		}, want: denied},

		// sts:SourceIdentity, "CN=<cn>" from the certificate.
		{name: "deny a source identity", policy: func(time.Time) string {
			return guarded(`{"StringEquals":{"sts:SourceIdentity":"CN=gitlab-runner"}}`)
		}, want: denied},
		{name: "deny another source identity", policy: func(time.Time) string {
			return guarded(`{"StringEquals":{"sts:SourceIdentity":"CN=admin"}}`)
		}},
		{name: "allow one source identity", policy: func(time.Time) string {
			return only(`{"StringEquals":{"sts:SourceIdentity":"CN=gitlab-runner"}}`)
		}},
		{name: "allow one source identity, another comes", policy: func(time.Time) string {
			return only(`{"StringEquals":{"sts:SourceIdentity":"CN=gitlab-runner"}}`)
		}, call: runner2, want: `condition StringEquals sts:SourceIdentity: got "CN=runner-2", want "CN=gitlab-runner"`},
		{name: "the source identity is present", policy: func(time.Time) string {
			return guarded(`{"Null":{"sts:SourceIdentity":"false"}}`)
		}, want: denied},
		{name: "the source identity is not absent", policy: func(time.Time) string {
			return guarded(`{"Null":{"sts:SourceIdentity":"true"}}`)
		}},
		{name: "IfExists compares a present source identity", policy: func(time.Time) string {
			return guarded(`{"StringNotEqualsIfExists":{"sts:SourceIdentity":"CN=gitlab-runner"}}`)
		}, call: runner2, want: denied},
		{name: "IfExists lets the matching source identity in", policy: func(time.Time) string {
			return guarded(`{"StringNotEqualsIfExists":{"sts:SourceIdentity":"CN=gitlab-runner"}}`)
		}},
		{name: "the body cannot set the source identity", policy: func(time.Time) string {
			return guarded(`{"StringEquals":{"sts:SourceIdentity":"CN=admin"}}`)
		}, call: func(e *env) call { return call{body: `{"durationSeconds":3600,"sourceIdentity":"CN=admin"}`} }},

		// aws:SecureTransport: AWS serves only TLS, whatever the emulator does.
		{name: "secure transport over plain HTTP", policy: func(time.Time) string {
			return guarded(`{"Bool":{"aws:SecureTransport":"false"}}`)
		}},
		{name: "secure transport is true", policy: func(time.Time) string {
			return guarded(`{"Bool":{"aws:SecureTransport":"true"}}`)
		}, want: denied},

		// The caller is the Roles Anywhere service principal.
		{name: "principal is an AWS service", policy: func(time.Time) string {
			return guarded(`{"Bool":{"aws:PrincipalIsAWSService":"true"}}`)
		}, want: denied},
		{name: "principal service name", policy: func(time.Time) string {
			return only(`{"StringEquals":{"aws:PrincipalServiceName":"rolesanywhere.amazonaws.com"}}`)
		}},
		{name: "another principal service name", policy: func(time.Time) string {
			return guarded(`{"StringNotEquals":{"aws:PrincipalServiceName":"rolesanywhere.amazonaws.com"}}`)
		}},

		// aws:SourceAccount.
		{name: "source account", policy: func(time.Time) string {
			return only(`{"StringEquals":{"aws:SourceAccount":"111122223333"}}`)
		}},
		{name: "another source account", policy: func(time.Time) string {
			return only(`{"StringEquals":{"aws:SourceAccount":"444455556666"}}`)
		}, want: `condition StringEquals aws:SourceAccount: got "111122223333"`},

		// Keys AWS does not send are absent: on AWS the call to STS comes
		// from the service, so the runner's address is never aws:SourceIp.
		{name: "the client address is not aws:SourceIp", policy: func(time.Time) string {
			return only(`{"IpAddress":{"aws:SourceIp":"127.0.0.0/8"}}`)
		}, want: "key aws:SourceIp is not in the request"},
		{name: "IfExists excuses an absent key", policy: func(time.Time) string {
			return only(`{"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}`)
		}},
		{name: "Null sees an absent key", policy: func(time.Time) string {
			return guarded(`{"Null":{"aws:TokenIssueTime":"true"}}`)
		}, want: denied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, setup{policyAt: tt.policy})
			c := call{}
			if tt.call != nil {
				c = tt.call(e)
			}
			a := e.createSession(c)
			if tt.want == "" {
				if a.status != http.StatusCreated {
					t.Fatalf("refused: %d %s: %s", a.status, a.code, a.message)
				}
				if got := a.session.CredentialSet[0].SourceIdentity; got != "CN=gitlab-runner" {
					t.Errorf("sourceIdentity %q, want CN=gitlab-runner", got)
				}
				return
			}
			if a.status != http.StatusForbidden || a.code != "AccessDeniedException" {
				t.Fatalf("got %d %s (%s), want 403 AccessDeniedException", a.status, a.code, a.message)
			}
			if !strings.Contains(a.message, "Unable to assume role") || !strings.Contains(a.message, tt.want) {
				t.Errorf("message %q, want it to contain %q", a.message, tt.want)
			}
		})
	}
}

// TestTrustPolicyFollowsTheClock: the time in the request context is the
// emulator's clock, not the host's: a session allowed now is refused once
// the injected clock passes the policy's date.
func TestTrustPolicyFollowsTheClock(t *testing.T) {
	var deadline time.Time
	e := newEnv(t, setup{policyAt: func(now time.Time) string {
		deadline = now.Add(time.Hour)
		return guarded(`{"DateGreaterThan":{"aws:CurrentTime":"` + iso(deadline) + `"}}`)
	}})
	if a := e.createSession(call{}); a.status != http.StatusCreated {
		t.Fatalf("before the deadline: %d %s: %s", a.status, a.code, a.message)
	}
	e.advance(time.Hour)
	if a := e.createSession(call{}); a.status != http.StatusCreated {
		t.Fatalf("at the deadline (not after it): %d %s: %s", a.status, a.code, a.message)
	}
	e.advance(time.Second)
	a := e.createSession(call{})
	if a.status != http.StatusForbidden || !strings.Contains(a.message, `statement "Guard" denies`) {
		t.Fatalf("a second after the deadline: %d %s: %s, want 403 from statement Guard", a.status, a.code, a.message)
	}
	if !strings.Contains(e.logs.String(), "CreateSession refused") {
		t.Errorf("no refusal in the log:\n%s", e.logs.String())
	}
}
