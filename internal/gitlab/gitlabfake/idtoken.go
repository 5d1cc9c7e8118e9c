package gitlabfake

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// DefaultIDTokenTTL is an id_token's lifetime when none is given: GitLab
// makes it the job's timeout, 5 minutes when the job has none.
const DefaultIDTokenTTL = 5 * time.Minute

// JobClaims returns the claims GitLab puts in a registered job's
// id_tokens (without iss, aud and the times), and false for an unknown
// job. As GitLab's, the IDs are strings except runner_id, a number, and
// the environment claims are there only when the job has an environment.
func (s *Server) JobClaims(id int64) (map[string]any, bool) {
	s.mu.Lock()
	j := s.jobs[id]
	var jc Job
	if j != nil {
		jc = j.Job
	}
	s.mu.Unlock()
	if j == nil {
		return nil, false
	}
	return Claims(jc, s.Issuer()), true
}

// Claims returns GitLab's id_tokens claims of job j (defaults filled in)
// on the GitLab at issuer, without iss, aud and the times.
func Claims(j Job, issuer string) map[string]any {
	j.defaults()
	refType, refPath := "branch", "refs/heads/"+j.Ref
	if j.Tag {
		refType, refPath = "tag", "refs/tags/"+j.Ref
	}
	namespace := j.ProjectPath
	if i := strings.LastIndexByte(namespace, '/'); i >= 0 {
		namespace = namespace[:i]
	}
	host := strings.TrimPrefix(strings.TrimPrefix(issuer, "https://"), "http://")
	c := map[string]any{
		"namespace_id":       strconv.FormatInt(j.NamespaceID, 10),
		"namespace_path":     namespace,
		"project_id":         strconv.FormatInt(j.ProjectID, 10),
		"project_path":       j.ProjectPath,
		"user_id":            strconv.FormatInt(j.UserID, 10),
		"user_login":         j.UserLogin,
		"user_email":         j.UserEmail,
		"pipeline_id":        strconv.FormatInt(j.PipelineID, 10),
		"pipeline_source":    "push",
		"job_id":             strconv.FormatInt(j.ID, 10),
		"ref":                j.Ref,
		"ref_type":           refType,
		"ref_path":           refPath,
		"ref_protected":      strconv.FormatBool(j.RefProtected),
		"runner_id":          j.RunnerID,
		"runner_environment": "self-hosted",
		"sha":                j.SHA,
		"project_visibility": "private",
		"ci_config_ref_uri":  host + "/" + j.ProjectPath + "//.gitlab-ci.yml@" + refPath,
		"ci_config_sha":      j.SHA,
		"sub":                "project_path:" + j.ProjectPath + ":ref_type:" + refType + ":ref:" + j.Ref,
	}
	if j.Environment != "" {
		c["environment"] = j.Environment
		c["environment_protected"] = strconv.FormatBool(j.EnvironmentProtected)
		tier := j.DeploymentTier
		if tier == "" {
			tier = "other"
		}
		c["deployment_tier"] = tier
		c["environment_action"] = "start"
	}
	return c
}

// JobIDToken mints an id_token for a registered job, "" for an unknown
// one.
func (s *Server) JobIDToken(id int64, aud string, ttl time.Duration) string {
	c, ok := s.JobClaims(id)
	if !ok {
		return ""
	}
	return s.IDToken(c, aud, ttl)
}

// IDToken mints an RS256 id_token signed with the current key: iss (the
// issuer), aud, iat and exp (now + ttl; DefaultIDTokenTTL when ttl is
// 0), nbf (5 seconds before iat, as GitLab) and a jti, overlaid with
// claims, where a nil value removes a claim. So a test can mint an
// expired token ("exp": past) or one with another issuer.
func (s *Server) IDToken(claims map[string]any, aud string, ttl time.Duration) string {
	s.mu.Lock()
	k := s.keys[0]
	s.mu.Unlock()
	return sign(k.key, k.kid, s.claims(claims, aud, ttl))
}

// ForgedIDToken mints what an attacker would: GitLab's claims and the
// current key's kid, but signed by another key. claims overlay the
// defaults as in IDToken (aud is absent unless claims give it).
func (s *Server) ForgedIDToken(claims map[string]any) string {
	s.mu.Lock()
	if s.forger == nil {
		k, err := rsa.GenerateKey(rand.Reader, keyBits)
		if err != nil {
			s.mu.Unlock()
			panic("gitlabfake: " + err.Error())
		}
		s.forger = k
	}
	forger, kid := s.forger, s.keys[0].kid
	s.mu.Unlock()
	return sign(forger, kid, s.claims(claims, "", 0))
}

func (s *Server) claims(claims map[string]any, aud string, ttl time.Duration) map[string]any {
	if ttl == 0 {
		ttl = DefaultIDTokenTTL
	}
	now := s.clock.Now()
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	c := map[string]any{
		"iss": s.Issuer(),
		"iat": now.Unix(),
		"nbf": now.Add(-5 * time.Second).Unix(),
		"exp": now.Add(ttl).Unix(),
		"jti": hex.EncodeToString(jti[:]),
	}
	if aud != "" {
		c["aud"] = aud
	}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// Sign signs claims, as they are, with the current key: for tests that
// need a token GitLab would never mint (no exp, say).
func (s *Server) Sign(claims map[string]any) string {
	s.mu.Lock()
	k := s.keys[0]
	s.mu.Unlock()
	return sign(k.key, k.kid, claims)
}

func sign(key *rsa.PrivateKey, kid string, claims map[string]any) string {
	payload, err := json.Marshal(claims)
	if err != nil {
		panic("gitlabfake: claims: " + err.Error())
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		panic("gitlabfake: " + err.Error())
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		panic("gitlabfake: " + err.Error())
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		panic("gitlabfake: " + err.Error())
	}
	return out
}
