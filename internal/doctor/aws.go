package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/keyless-dev/keyless/internal/clock"
	"github.com/keyless-dev/keyless/internal/rolesanywhere"
	"github.com/keyless-dev/keyless/internal/sigv4"
	"github.com/keyless-dev/keyless/internal/sts"
)

// awsClock reaches the Roles Anywhere endpoint (unsigned) and compares
// this machine's clock with its Date: SigV4 refuses a request signed
// more than five minutes off.
func (r *run) awsClock(ctx context.Context) {
	ctx, cancel := r.timeout(ctx)
	defer cancel()
	date, err := rolesanywhere.ServerDate(ctx, r.plan.Endpoint, r.plan.Transport)
	var te *rolesanywhere.TransportError
	switch {
	case errors.As(err, &te):
		r.add(CheckAWSClock, Fail, fmt.Sprintf("cannot reach %s: %v", r.plan.Endpoint, te.Err), r.endpointFix(err))
		return
	case err != nil:
		// An answer without a Date (a proxy's, say): the clock cannot be
		// compared, and CreateSession will tell.
		r.add(CheckAWSClock, Warn, err.Error(), "check that "+r.n("endpoint")+" is the Roles Anywhere endpoint, not a proxy or another service")
		return
	}
	r.awsDate = date
	st, skew := clockSkew(r.now, date)
	detail := describeSkew(skew, r.plan.Endpoint+"'s")
	switch st {
	case Fail:
		r.add(CheckAWSClock, Fail, detail+"; AWS refuses signatures more than 5 minutes off (Signature expired)",
			"set this machine's clock right: timedatectl set-ntp true, or chronyc makestep (ntpdate -u pool.ntp.org where there is no chrony)")
	case Warn:
		r.add(CheckAWSClock, Warn, detail, "turn on time synchronisation (timedatectl set-ntp true): past 5 minutes AWS refuses every request")
	default:
		r.ok(CheckAWSClock, "%s", detail)
	}
}

func (r *run) endpointFix(err error) string {
	var unknown x509.UnknownAuthorityError
	var certErr *tls.CertificateVerificationError
	var hostErr x509.HostnameError
	switch {
	case errors.As(err, &unknown), errors.As(err, &certErr) && strings.Contains(err.Error(), "unknown authority"):
		return "the endpoint's TLS certificate is from a CA this machine does not trust: point AWS_CA_BUNDLE at that CA's certificate"
	case errors.As(err, &hostErr):
		return fmt.Sprintf("the endpoint's TLS certificate is not valid for its host: check %s (or AWS_ENDPOINT_URL_ROLESANYWHERE)", r.n("endpoint"))
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("nothing listens there: check %s (or AWS_ENDPOINT_URL_ROLESANYWHERE)", r.n("endpoint"))
	}
	return fmt.Sprintf("check DNS and the network path to the endpoint; behind a proxy add %s and set HTTPS_PROXY", r.n("with-proxy"))
}

// createSession signs and sends CreateSession, once, with no cache.
func (r *run) createSession(ctx context.Context) {
	switch {
	case r.id == nil:
		r.skip(CheckCreateSession, "%s", r.failedBefore(CheckIdentity))
		return
	case r.status(CheckValidity) == Fail:
		r.skip(CheckCreateSession, "the certificate is not valid now (see %q): AWS would refuse it", title(CheckValidity))
		return
	case r.status(CheckAWSClock) == Fail && r.awsDate.IsZero():
		r.skip(CheckCreateSession, "%s", r.failedBefore(CheckAWSClock))
		return
	case r.status(CheckAWSClock) == Fail:
		r.skip(CheckCreateSession, "this machine's clock is off (see %q): AWS would refuse the signature", title(CheckAWSClock))
		return
	}
	client, err := rolesanywhere.New(rolesanywhere.Config{
		Endpoint:    r.plan.Endpoint,
		Region:      r.plan.Region,
		Signer:      &sigv4.X509Signer{Key: r.id.Key, Certificate: r.id.Certificate, Intermediates: r.id.Intermediates},
		Transport:   r.plan.Transport,
		UserAgent:   r.cfg.UserAgent,
		Now:         r.clk.Now,
		Sleep:       func(ctx context.Context, d time.Duration) error { return clock.Sleep(ctx, r.clk, d) },
		Logger:      r.cfg.Logger,
		MaxAttempts: 1,
	})
	if err != nil {
		r.add(CheckCreateSession, Fail, err.Error(), "point AWS_CA_BUNDLE at a PEM file of CA certificates, or unset it")
		return
	}
	ctx, cancel := r.timeout(ctx)
	defer cancel()
	s, err := client.CreateSession(ctx, r.plan.Input)
	if err != nil {
		detail, fix := r.sessionRefusal(err)
		r.add(CheckCreateSession, Fail, detail, fix)
		return
	}
	r.session = s
	r.ok(CheckCreateSession, "%s assumed %s (source identity %s), credentials until %s", r.plan.Endpoint, s.AssumedRoleARN, s.SourceIdentity, rfc(s.Credentials.Expiration))
}

// emulatorRule is how the keyless emulator appends the rule that refused
// a request to AWS's message.
const emulatorRule = " (keyless emulator: "

// sessionRefusal explains a failed CreateSession: AWS's code and
// message, the emulator's rule when it names one, and the fix.
func (r *run) sessionRefusal(err error) (detail, fix string) {
	var api *rolesanywhere.APIError
	if !errors.As(err, &api) {
		return err.Error(), r.endpointFix(err)
	}
	message, rule, _ := strings.Cut(api.Message, emulatorRule)
	rule = strings.TrimSuffix(rule, ")")
	detail = fmt.Sprintf("AWS refused (%d %s): %s", api.StatusCode, api.Code, message)
	if rule != "" {
		detail += "; the emulator's rule: " + rule
	}
	profile, role, anchor := r.cfg.Request.ProfileARN, r.cfg.Request.RoleARN, r.cfg.Request.TrustAnchorARN
	lower := strings.ToLower(message + " " + rule)
	switch {
	case strings.Contains(lower, "durationseconds"):
		fix = fmt.Sprintf("the session would outlast the role's maximum session duration: lower %s (or the profile's durationSeconds), or raise the role's MaxSessionDuration (aws iam update-role --role-name %s --max-session-duration SECONDS)", r.n("session-duration"), lastPart(role))
	case api.Code == "ValidationException" && strings.Contains(lower, "polic"):
		fix = fmt.Sprintf("the profile's session policy or managed policy ARNs exceed STS's limits (at most 10 ARNs, 2,048 characters together, packed size under 100%%): shorten them (aws rolesanywhere update-profile --profile-id %s)", lastPart(profile))
	case strings.Contains(lower, "profile is disabled"):
		fix = fmt.Sprintf("enable the profile: aws rolesanywhere enable-profile --profile-id %s (or enabled = true in Terraform)", lastPart(profile))
	case strings.Contains(lower, "trust anchor is disabled"):
		fix = fmt.Sprintf("enable the trust anchor: aws rolesanywhere enable-trust-anchor --trust-anchor-id %s (or enabled = true in Terraform)", lastPart(anchor))
	case strings.Contains(lower, "signature expired"), strings.Contains(lower, "clock skew"):
		fix = "set this machine's clock right: timedatectl set-ntp true, or chronyc makestep"
	case strings.Contains(lower, "is not in profile"):
		fix = fmt.Sprintf("add the role to the profile (aws rolesanywhere update-profile --profile-id %s --role-arns %s ..., or the Terraform module's roles), or use a %s the profile lists", lastPart(profile), role, r.n("role-arn"))
	case strings.Contains(lower, "trust policy"):
		fix = fmt.Sprintf("the role's trust policy refuses this certificate: run keyless doctor again with --trust-policy FILE (aws iam get-role --role-name %s --query Role.AssumeRolePolicyDocument > FILE) to see which condition, then change the certificate or the policy", lastPart(role))
	case strings.Contains(lower, "unable to assume role"):
		fix = fmt.Sprintf("the role must be in the profile's role ARNs, and its trust policy must allow this certificate: check the profile (aws rolesanywhere get-profile --profile-id %s), then run keyless doctor with --trust-policy FILE (aws iam get-role --role-name %s --query Role.AssumeRolePolicyDocument > FILE)", lastPart(profile), lastPart(role))
	case strings.Contains(lower, "revoked"):
		fix = r.reenroll()
	case strings.Contains(lower, "x-amz-x509-chain"):
		fix = fmt.Sprintf("send the intermediate CA with the certificate: %s FILE (keyless ca bundle has it), or add it to the trust anchor's bundle", r.n("intermediates"))
	case strings.Contains(lower, "chains to trust anchor"):
		fix = fmt.Sprintf("the certificate belongs to another trust anchor: use its ARN as %s", r.n("trust-anchor-arn"))
	case strings.Contains(lower, "untrusted") || strings.Contains(lower, "certificate"):
		fix = fmt.Sprintf("the trust anchor %s must hold the CA that issued this certificate: put keyless ca bundle's output in it (aws rolesanywhere update-trust-anchor, or the Terraform module's ca_bundle), send intermediates with %s, or use the trust anchor that holds your CA", anchor, r.n("intermediates"))
	case strings.Contains(lower, "rolesessionname"):
		fix = fmt.Sprintf("drop %s, or set acceptRoleSessionName on the profile", r.n("role-session-name"))
	case api.Code == "ResourceNotFoundException":
		fix = fmt.Sprintf("check the ARNs against the account and region of %s (aws rolesanywhere list-trust-anchors, list-profiles)", r.plan.Endpoint)
	case api.Code == "ValidationException":
		fix = fmt.Sprintf("check %s (900 to 43200, at most the role's maximum) and the ARNs", r.n("session-duration"))
	case api.StatusCode >= 500 || api.Throttling():
		fix = "the service failed or throttled: try again in a moment"
	default:
		fix = fmt.Sprintf("check the trust anchor, profile and role (%s)", r.plan.Endpoint)
	}
	return detail, fix
}

// lastPart is the id at the end of an ARN.
func lastPart(arn string) string {
	if i := strings.LastIndexByte(arn, '/'); i >= 0 {
		return arn[i+1:]
	}
	return arn
}

// stsEndpoint picks where GetCallerIdentity goes.
func (r *run) stsEndpoint() string {
	if r.cfg.STSEndpoint != "" {
		return r.cfg.STSEndpoint
	}
	if e := r.cfg.Getenv("AWS_ENDPOINT_URL_STS"); e != "" {
		return e
	}
	if def := rolesanywhere.DefaultEndpoint(r.plan.Region); r.plan.Endpoint == def {
		return strings.Replace(def, "://rolesanywhere.", "://sts.", 1)
	}
	return r.plan.Endpoint
}

// sts asks STS who the session's credentials are.
func (r *run) sts(ctx context.Context) {
	if r.session == nil {
		r.skip(CheckSTS, "needs credentials from %q", title(CheckCreateSession))
		return
	}
	endpoint := r.stsEndpoint()
	t := r.plan.Transport
	client, err := sts.NewWithOptions(endpoint, r.plan.Region, sts.Options{RootCAs: t.RootCAs, InsecureSkipVerify: t.InsecureSkipVerify, UseProxy: t.UseProxy})
	if err != nil {
		r.add(CheckSTS, Fail, err.Error(), "point AWS_CA_BUNDLE at a PEM file of CA certificates, or unset it")
		return
	}
	client.Now = r.clk.Now
	ctx, cancel := r.timeout(ctx)
	defer cancel()
	id, err := client.GetCallerIdentity(ctx, r.session.Credentials)
	if err != nil {
		r.add(CheckSTS, Fail, fmt.Sprintf("%s: %v", endpoint, err),
			"CreateSession's credentials were refused by STS there: check --sts-endpoint (or AWS_ENDPOINT_URL_STS); it must be the STS of the account that issued them")
		return
	}
	role, _ := rolesanywhere.ParseRoleARN(r.cfg.Request.RoleARN)
	if id.Account != role.Account {
		r.add(CheckSTS, Warn, fmt.Sprintf("%s is in account %s, not the role's %s", id.Arn, id.Account, role.Account), "check --sts-endpoint")
		return
	}
	r.ok(CheckSTS, "%s (account %s) at %s", id.Arn, id.Account, endpoint)
}
