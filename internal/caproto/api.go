package caproto

import (
	"encoding/json"
	"fmt"
	"time"
)

// API paths (also served without the /1.0 prefix, as step-ca does).
const (
	PathSign   = "/1.0/sign"
	PathRenew  = "/1.0/renew"
	PathRevoke = "/1.0/revoke"
	PathCRL    = "/1.0/crl"
	// ListOp is the operation of keyless's certificate list (not part of
	// step-ca's API), for tokens: a provisioner's token with audience
	// https://<ca>/1.0/keyless/certificates.
	ListOp   = "keyless/certificates"
	PathList = "/1.0/" + ListOp
)

// SignRequest is the body of POST /1.0/sign.
type SignRequest struct {
	CSR       string `json:"csr"`
	OTT       string `json:"ott"`
	NotBefore string `json:"notBefore,omitempty"`
	NotAfter  string `json:"notAfter,omitempty"`
}

// SignResponse is the answer to sign and renew: the leaf and the
// intermediate as PEM, and the chain in order.
type SignResponse struct {
	Crt        string         `json:"crt"`
	CA         string         `json:"ca"`
	CertChain  []string       `json:"certChain"`
	TLSOptions map[string]any `json:"tlsOptions,omitempty"`
}

// RevokeRequest is the body of POST /1.0/revoke: a serial and a revoke
// token (ott), or none when the client proves itself over mTLS.
type RevokeRequest struct {
	Serial     string `json:"serial"`
	OTT        string `json:"ott,omitempty"`
	ReasonCode int    `json:"reasonCode"`
	Reason     string `json:"reason"`
	Passive    bool   `json:"passive"`
}

// ListResponse is the answer to GET /1.0/keyless/certificates.
type ListResponse struct {
	Certificates []Certificate `json:"certificates"`
}

// Certificate is what the certificate list says of each issued
// certificate.
type Certificate struct {
	Serial      string    `json:"serial"`
	Subject     string    `json:"subject"`
	SANs        []string  `json:"sans"`
	NotBefore   time.Time `json:"notBefore"`
	NotAfter    time.Time `json:"notAfter"`
	Provisioner string    `json:"provisioner"`
	IssuedAt    time.Time `json:"issuedAt"`
	RenewedFrom string    `json:"renewedFrom,omitempty"`
	Revoked     bool      `json:"revoked"`
}

// Reason says why a CA refused, in terms a client can act on. keyless's
// CA sends it with every refusal it can classify; for other CAs
// (step-ca), internal/caclient infers it from the message.
type Reason string

// Reasons.
const (
	ReasonTokenUsed        Reason = "tokenUsed"           // a one-time token was spent already
	ReasonTokenExpired     Reason = "tokenExpired"        // the token's exp passed
	ReasonTokenNotYetValid Reason = "tokenNotYetValid"    // the token's nbf is ahead (a clock is wrong)
	ReasonTokenInvalid     Reason = "tokenInvalid"        // not a token of this CA, or not for this operation
	ReasonNameNotAllowed   Reason = "nameNotAllowed"      // the provisioner's policy does not allow the name
	ReasonLifetimeTooLong  Reason = "lifetimeTooLong"     // above the provisioner's maximum (Limit)
	ReasonLifetimeTooShort Reason = "lifetimeTooShort"    // below the provisioner's minimum (Limit)
	ReasonNotBeforeRange   Reason = "notBeforeOutOfRange" // notBefore before now or after the token expires
	ReasonNeedsCertificate Reason = "needsCertificate"    // renewal without the certificate (no mTLS, no renewal token)
	ReasonCertRevoked      Reason = "certificateRevoked"
	ReasonCertExpired      Reason = "certificateExpired"
	ReasonCertUnknown      Reason = "certificateUnknown" // not issued by this CA, or not in its records
	ReasonRenewalDisabled  Reason = "renewalDisabled"    // the provisioner does not renew
)

// ErrorResponse is step-ca's error shape, {"status":N,"message":"..."},
// with keyless's reason and, for lifetime refusals, the provisioner's
// bound; step's clients ignore the fields they do not know.
type ErrorResponse struct {
	Status  int      `json:"status"`
	Message string   `json:"message"`
	Reason  Reason   `json:"reason,omitempty"`
	Limit   Duration `json:"limit,omitempty"`
}

// Duration is a time.Duration in JSON as Go writes it ("168h0m0s").
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("limit %q is not a duration", s)
	}
	*d = Duration(v)
	return nil
}
