package authz

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keyless-dev/keyless/internal/gitlab"
)

type jobEntry struct {
	id    *Identity // nil when refused
	err   *Error
	until time.Time
}

// jobFlight is one question to GitLab that every caller with the same
// token waits for.
type jobFlight struct {
	done chan struct{}
	id   *Identity
	err  *Error
}

// verifyJob verifies a job token by the token's SHA-256: from the caches,
// else by joining or starting the one GitLab call for it. With
// maxJobCalls calls in flight, a token that needs a new one is refused
// at once.
func (v *Verifier) verifyJob(ctx context.Context, tok string, sum [32]byte) (*Identity, error) {
	now := v.clock.Now()
	v.mu.Lock()
	if e, ok := v.jobCache[sum]; ok {
		if now.Before(e.until) {
			v.mu.Unlock()
			return e.id, nil
		}
		delete(v.jobCache, sum)
	}
	if e, ok := v.negCache[sum]; ok {
		if now.Before(e.until) {
			v.mu.Unlock()
			return nil, e.err
		}
		delete(v.negCache, sum)
	}
	f := v.jobFlights[sum]
	if f == nil {
		// One flight is one call: the flights are the calls in flight.
		if len(v.jobFlights) >= maxJobCalls {
			v.mu.Unlock()
			return nil, refuse(503, ReasonGitLabBusy, "the agent is asking GitLab about %d other job tokens already; try again", maxJobCalls)
		}
		f = &jobFlight{done: make(chan struct{})}
		v.jobFlights[sum] = f
		// The call outlives the caller that started it: the others
		// waiting on it must not fail because that one left, and its
		// answer is cached for the next.
		go v.askGitLab(context.WithoutCancel(ctx), tok, sum, f)
	}
	v.mu.Unlock()
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, canceled(ctx.Err())
	}
	if f.err != nil {
		return nil, f.err
	}
	return f.id, nil
}

func (v *Verifier) askGitLab(ctx context.Context, tok string, sum [32]byte, f *jobFlight) {
	job, err := v.jobs.Job(ctx, tok)
	var id *Identity
	var refusal *Error
	switch {
	case err == nil && job == nil:
		refusal = &Error{Status: 503, Reason: ReasonGitLabUnavailable, Message: "GitLab gave no job for the token; try again"}
	case err == nil && job.Status != gitlab.StatusRunning:
		refusal = refuse(401, ReasonJobNotRunning, "the job token's job %d is %s, not running", job.ID, cut(job.Status, 20))
	case err == nil && v.runners != nil && (job.Runner == nil || !slices.Contains(v.runners, job.Runner.ID)):
		runner := "no runner"
		if job.Runner != nil {
			runner = "runner " + strconv.FormatInt(job.Runner.ID, 10)
		}
		refusal = refuse(403, ReasonRunnerMismatch, "the job token's job %d runs on %s, not one this agent serves", job.ID, runner)
	case err == nil:
		id = v.jobIdentity(job)
	case errors.Is(err, gitlab.ErrJobNotRunning):
		refusal = refuse(401, ReasonJobNotRunning, "GitLab does not know the token as a running job's (a finished job's token, or not a job token)")
	default:
		refusal = &Error{Status: 503, Reason: ReasonGitLabUnavailable, Message: "GitLab could not be asked about the job token; try again", Err: err}
	}
	now := v.clock.Now()
	v.mu.Lock()
	delete(v.jobFlights, sum)
	switch {
	case id != nil:
		cacheLocked(v.jobCache, maxJobCache, sum, jobEntry{id: id, until: now.Add(v.jobTTL)}, now)
	case refusal.Status < 500:
		// GitLab's answer about this token (not running, another
		// runner's job), not an outage: asked again a little later.
		cacheLocked(v.negCache, maxNegCache, sum, jobEntry{err: refusal, until: now.Add(min(negativeTTL, v.jobTTL))}, now)
	}
	f.id, f.err = id, refusal
	v.mu.Unlock()
	close(f.done)
	if id != nil {
		v.log.Debug("GitLab confirmed a running job", "job", id.Claims["job_id"], "project", id.Claims["project_path"])
	}
}

// cacheLocked stores e in cache, making room first: expired entries go,
// then (all still valid: a flood of tokens) arbitrary ones.
func cacheLocked(cache map[[32]byte]jobEntry, limit int, sum [32]byte, e jobEntry, now time.Time) {
	if len(cache) >= limit {
		for k, old := range cache {
			if !now.Before(old.until) {
				delete(cache, k)
			}
		}
		for k := range cache {
			if len(cache) < limit {
				break
			}
			delete(cache, k)
		}
	}
	cache[sum] = e
}

// jobIdentity turns GitLab's job into claims; the project's path comes
// from web_url under GitLab's URL, and is absent (so rules on it do not
// match) when web_url does not parse or is not under GitLab's URL.
func (v *Verifier) jobIdentity(j *gitlab.Job) *Identity {
	c := map[string]string{}
	put := func(k, s string) {
		if s != "" {
			c[k] = s
		}
	}
	num := func(k string, n int64) {
		if n > 0 {
			c[k] = strconv.FormatInt(n, 10)
		}
	}
	num("job_id", j.ID)
	put("job_name", j.Name)
	put("ref", j.Ref)
	if j.Tag {
		c["ref_type"] = "tag"
	} else {
		c["ref_type"] = "branch"
	}
	num("pipeline_id", j.Pipeline.ID)
	num("project_id", j.Pipeline.ProjectID)
	put("sha", j.Pipeline.SHA)
	if j.User != nil {
		num("user_id", j.User.ID)
		put("user_login", j.User.Username)
	}
	if j.Runner != nil {
		num("runner_id", j.Runner.ID)
	}
	project, jobID, err := parseWebURL(v.base, j.WebURL)
	switch {
	case err != nil:
		v.log.Warn("GitLab's job has a web_url keyless cannot read: rules on project_path will not match its token", "job", j.ID, "error", err)
	case jobID != j.ID:
		v.log.Warn("GitLab's job has the web_url of another job: rules on project_path will not match its token", "job", j.ID, "web_url_job", jobID)
	default:
		c["project_path"] = project
		if i := strings.LastIndexByte(project, '/'); i > 0 {
			c["namespace_path"] = project[:i]
		}
	}
	return &Identity{Kind: JobToken, Claims: c}
}

// ParseWebURL reads a GitLab job's web_url,
// https://host/ROOT/group/sub/project/-/jobs/ID, into the project's path
// (group/sub/project) and the job's ID, where https://host/ROOT is
// gitlabURL, GitLab's base URL (ROOT is GitLab's relative URL root, often
// empty): web_url must have its scheme and host and start with its path,
// which is taken off. Path segments are GitLab's path characters
// (letters, digits, '_', '-', '.'), at least a namespace and a project,
// no "." or ".." and nothing escaped.
func ParseWebURL(gitlabURL, webURL string) (project string, jobID int64, err error) {
	base, err := parseBaseURL(gitlabURL)
	if err != nil {
		return "", 0, err
	}
	return parseWebURL(base, webURL)
}

func parseWebURL(base *url.URL, webURL string) (project string, jobID int64, err error) {
	u, err := url.Parse(webURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", 0, errors.New("web_url is not an http(s) URL of a job")
	}
	if u.Scheme != base.Scheme || !sameHost(u, base) {
		return "", 0, fmt.Errorf("web_url is not on GitLab's URL %s (scheme and host differ)", base.Scheme+"://"+base.Host)
	}
	p := u.EscapedPath()
	if strings.Contains(p, "%") {
		return "", 0, errors.New("web_url's path has escaped characters")
	}
	rest, ok := strings.CutPrefix(p, base.Path+"/")
	if !ok {
		return "", 0, fmt.Errorf("web_url's path is not under GitLab's path %q", base.Path+"/")
	}
	segs := strings.Split(rest, "/")
	n := len(segs)
	if n < 5 || segs[n-3] != "-" || segs[n-2] != "jobs" {
		return "", 0, errors.New("web_url is not GROUP/PROJECT/-/jobs/ID")
	}
	jobID, err = strconv.ParseInt(segs[n-1], 10, 64)
	if err != nil || jobID <= 0 || strconv.FormatInt(jobID, 10) != segs[n-1] {
		return "", 0, errors.New("web_url does not end in a job ID")
	}
	for _, s := range segs[:n-3] {
		if !gitlabPathSegment(s) {
			return "", 0, fmt.Errorf("web_url has the path segment %q, which is not a GitLab namespace or project", cut(s, 64))
		}
	}
	return strings.Join(segs[:n-3], "/"), jobID, nil
}

// sameHost compares hosts case-insensitively, with a scheme's default
// port the same as none.
func sameHost(a, b *url.URL) bool {
	port := func(u *url.URL) string {
		if p := u.Port(); p != "" {
			return p
		}
		if u.Scheme == "https" {
			return "443"
		}
		return "80"
	}
	return strings.EqualFold(a.Hostname(), b.Hostname()) && port(a) == port(b)
}

func gitlabPathSegment(s string) bool {
	if s == "" || s == "." || s == ".." || s == "-" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
