package authz

import (
	"context"
	"errors"
	"fmt"
	"net/url"
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

// verifyJob verifies a job token by the token's SHA-256: from the cache,
// else by joining or starting the one GitLab call for it.
func (v *Verifier) verifyJob(ctx context.Context, tok string, sum [32]byte) (*Identity, error) {
	now := v.clock.Now()
	v.mu.Lock()
	if e, ok := v.jobCache[sum]; ok {
		if now.Before(e.until) {
			v.mu.Unlock()
			if e.err != nil {
				return nil, e.err
			}
			return e.id.clone(), nil
		}
		delete(v.jobCache, sum)
	}
	f := v.jobFlights[sum]
	if f == nil {
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
	return f.id.clone(), nil
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
		v.cacheLocked(sum, jobEntry{id: id, until: now.Add(v.jobTTL)}, now)
	case refusal.Status == 401:
		v.cacheLocked(sum, jobEntry{err: refusal, until: now.Add(min(negativeTTL, v.jobTTL))}, now)
	}
	f.id, f.err = id, refusal
	v.mu.Unlock()
	close(f.done)
	if id != nil {
		v.log.Debug("GitLab confirmed a running job", "job", id.Claims["job_id"], "project", id.Claims["project_path"])
	}
}

// cacheLocked stores e, making room first: expired entries go, then (all
// still valid: a flood of tokens) arbitrary ones.
func (v *Verifier) cacheLocked(sum [32]byte, e jobEntry, now time.Time) {
	if len(v.jobCache) >= maxJobCache {
		for k, old := range v.jobCache {
			if !now.Before(old.until) {
				delete(v.jobCache, k)
			}
		}
		for k := range v.jobCache {
			if len(v.jobCache) < maxJobCache {
				break
			}
			delete(v.jobCache, k)
		}
	}
	v.jobCache[sum] = e
}

// jobIdentity turns GitLab's job into claims; the project's path comes
// from web_url, and is absent (so rules on it do not match) when web_url
// does not parse.
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
	project, jobID, err := ParseWebURL(j.WebURL)
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
// https://host/group/sub/project/-/jobs/ID, into the project's path
// (group/sub/project) and the job's ID. Path segments are GitLab's path
// characters (letters, digits, '_', '-', '.'), at least a namespace and a
// project, no "." or ".." and nothing escaped.
func ParseWebURL(webURL string) (project string, jobID int64, err error) {
	u, err := url.Parse(webURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", 0, errors.New("web_url is not an http(s) URL of a job")
	}
	p := u.EscapedPath()
	if strings.Contains(p, "%") {
		return "", 0, errors.New("web_url's path has escaped characters")
	}
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
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
