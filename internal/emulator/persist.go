package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/keyless-dev/keyless/internal/atomicfile"
	"github.com/keyless-dev/keyless/internal/iampolicy"
	"github.com/keyless-dev/keyless/internal/secretfile"
)

// stateFormat names the state file's format; a file of another format is
// refused rather than misread. Format 2 added the generation and id that
// tie the journal (see journal.go) to the snapshot; a format 1 file (no
// generation, no journal) still loads, as generation 0, and is rewritten
// as format 2 at start.
const (
	stateFormat   = "keyless-emulator-state/2"
	stateFormatV1 = "keyless-emulator-state/1"
)

// The state file: every resource as the control plane's calls would
// recreate it, in a stable order so that the same state writes the same
// bytes.
type stateFile struct {
	Format string `json:"format"`
	// Generation counts the snapshots written; ID is random per
	// snapshot. The journal names both and is applied only to this one.
	Generation   uint64               `json:"generation,omitempty"`
	ID           string               `json:"id,omitempty"`
	Account      string               `json:"account"`
	Region       string               `json:"region"`
	TrustAnchors []stateAnchor        `json:"trustAnchors"`
	CRLs         []stateCRL           `json:"crls"`
	Profiles     []stateProfile       `json:"profiles"`
	Roles        []stateRole          `json:"roles"`
	Tags         map[string][]jsonTag `json:"tags,omitempty"`
}

type jsonTag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type stateAnchor struct {
	ID                   string                `json:"id"`
	Name                 string                `json:"name"`
	Enabled              bool                  `json:"enabled"`
	CertificateBundlePEM string                `json:"certificateBundlePem"`
	NotificationSettings []NotificationSetting `json:"notificationSettings,omitempty"`
	CreatedAt            time.Time             `json:"createdAt"`
	UpdatedAt            time.Time             `json:"updatedAt"`
}

type stateCRL struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	Enabled        bool      `json:"enabled"`
	TrustAnchorARN string    `json:"trustAnchorArn"`
	Data           []byte    `json:"crlData"`
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

type stateProfile struct {
	ID                        string   `json:"id"`
	Name                      string   `json:"name"`
	Enabled                   bool     `json:"enabled"`
	RoleARNs                  []string `json:"roleArns"`
	DurationSeconds           int      `json:"durationSeconds"`
	AcceptRoleSessionName     bool     `json:"acceptRoleSessionName"`
	RequireInstanceProperties bool     `json:"requireInstanceProperties"`
	ManagedPolicyARNs         []string `json:"managedPolicyArns,omitempty"`
	SessionPolicy             string   `json:"sessionPolicy,omitempty"`
	// AttributeMappings is saved even when empty (every mapping
	// deleted); a file without it (null) gets AWS's default mappings.
	AttributeMappings []AttributeMapping `json:"attributeMappings"`
	CreatedBy         string             `json:"createdBy"`
	CreatedAt         time.Time          `json:"createdAt"`
	UpdatedAt         time.Time          `json:"updatedAt"`
}

type stateRole struct {
	Name                     string            `json:"name"`
	ID                       string            `json:"id"`
	Path                     string            `json:"path"`
	Description              string            `json:"description,omitempty"`
	MaxSessionDuration       int               `json:"maxSessionDuration"`
	AssumeRolePolicyDocument string            `json:"assumeRolePolicyDocument"`
	ManagedPolicyARNs        []string          `json:"managedPolicyArns,omitempty"`
	InlinePolicies           map[string]string `json:"inlinePolicies,omitempty"`
	PermissionsBoundary      string            `json:"permissionsBoundary,omitempty"`
	Tags                     []jsonTag         `json:"tags,omitempty"`
	CreatedAt                time.Time         `json:"createdAt"`
}

// StateFileError is a state file the emulator cannot start from: one it
// cannot read or write, or (Refused) one that is not a state file
// (corrupt, or of another format) or is of another account or region
// than the seed's.
type StateFileError struct {
	Path    string
	Refused bool
	Err     error
}

func (e *StateFileError) Error() string { return fmt.Sprintf("state file %s: %v", e.Path, e.Err) }
func (e *StateFileError) Unwrap() error { return e.Err }

// openState loads the state at path (the snapshot, then its journal,
// path+".journal") when the snapshot exists; otherwise it records initial
// (the seed's resources) there. Either way every later change is written
// before it is answered (see journal.go). The temporary files of a
// writer killed before its rename are removed first: they hold a state
// never answered, and nothing reads them.
func (e *Emulator) openState(path string, initial *resources) (*resources, error) {
	j := &journal{e: e, path: path, jpath: path + journalSuffix, sync: datasync, compactMin: defaultCompactMin}
	e.st.journal = j
	for _, p := range []string{path, j.jpath} {
		for _, tmp := range atomicfile.Cleanup(p) {
			e.log.Info("removed the temporary file of an interrupted state write", "file", tmp)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, &StateFileError{Path: path, Err: err}
	}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// A journal without its snapshot belongs to a state that was
		// moved away: it must not be applied to the new one.
		if err := os.Remove(j.jpath); err == nil {
			e.log.Info("removed the journal of a state file that is gone", "journal", j.jpath)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, &StateFileError{Path: j.jpath, Err: err}
		}
		if err := j.compact(initial); err != nil {
			return nil, &StateFileError{Path: path, Err: err}
		}
		e.st.persist = j.record
		return initial, nil
	case err != nil:
		return nil, &StateFileError{Path: path, Err: err}
	}
	// Whoever can write the state can add a trust anchor of their own and
	// get credentials: it must be this user's (or root's) and writable by
	// nobody else, as a CA's files are.
	if err := secretfile.CheckOwned("emulator state file", path); err != nil {
		return nil, &StateFileError{Path: path, Err: err}
	}
	res, f, err := e.decodeState(data)
	if err != nil {
		return nil, &StateFileError{Path: path, Refused: true, Err: err}
	}
	j.gen, j.id = f.Generation, f.ID
	reuse, err := j.load(res)
	if err != nil {
		return nil, err
	}
	if reuse {
		err = j.reopen(int64(len(data)))
	} else {
		// Fold what the journal holds (or convert a format 1 file) into
		// a new snapshot with an empty journal, so appends never follow
		// a torn record and the journal starts small.
		err = j.compact(res)
	}
	if err != nil {
		return nil, &StateFileError{Path: path, Err: err}
	}
	e.st.persist = j.record
	if len(e.seed.TrustAnchors)+len(e.seed.Roles)+len(e.seed.Profiles) > 0 {
		// The state wins: the seed made it, and the control plane may have
		// changed or deleted what the seed made since.
		e.log.Info("state file loaded; the seed's resources were applied when it was created and are not applied again (move the state file away to start from the seed)", "state", path)
	}
	return res, nil
}

// encodeSnapshot is the state file for r, as generation gen with id.
func (e *Emulator) encodeSnapshot(r *resources, gen uint64, id string) ([]byte, error) {
	f := e.encodeState(r)
	f.Generation, f.ID = gen, id
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

func (e *Emulator) encodeState(r *resources) *stateFile {
	f := &stateFile{Format: stateFormat, Account: e.st.account, Region: e.st.region,
		TrustAnchors: []stateAnchor{}, CRLs: []stateCRL{}, Profiles: []stateProfile{}, Roles: []stateRole{}}
	for _, id := range sortedKeys(r.anchors) {
		f.TrustAnchors = append(f.TrustAnchors, encodeAnchor(r.anchors[id]))
	}
	for _, id := range sortedKeys(r.crls) {
		f.CRLs = append(f.CRLs, encodeCRL(r.crls[id]))
	}
	for _, id := range sortedKeys(r.profiles) {
		f.Profiles = append(f.Profiles, encodeProfile(r.profiles[id]))
	}
	for _, name := range sortedKeys(r.roles) {
		f.Roles = append(f.Roles, encodeRole(r.roles[name]))
	}
	if len(r.tags) > 0 {
		f.Tags = map[string][]jsonTag{}
		for arn, tags := range r.tags {
			f.Tags[arn] = toJSONTags(tags)
		}
	}
	return f
}

func encodeAnchor(ta *TrustAnchor) stateAnchor {
	return stateAnchor{ID: ta.ID, Name: ta.Name, Enabled: ta.Enabled, CertificateBundlePEM: ta.BundlePEM,
		NotificationSettings: ta.NotificationSettings, CreatedAt: ta.CreatedAt, UpdatedAt: ta.UpdatedAt}
}

func encodeCRL(c *CRL) stateCRL {
	return stateCRL{ID: c.ID, Name: c.Name, Enabled: c.Enabled, TrustAnchorARN: c.TrustAnchorARN, Data: c.Data,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

func encodeProfile(p *Profile) stateProfile {
	return stateProfile{ID: p.ID, Name: p.Name, Enabled: p.Enabled, RoleARNs: p.RoleARNs, DurationSeconds: p.DurationSeconds,
		AcceptRoleSessionName: p.AcceptRoleSessionName, RequireInstanceProperties: p.RequireInstanceProperties, ManagedPolicyARNs: p.ManagedPolicyARNs,
		SessionPolicy: p.SessionPolicy, AttributeMappings: p.AttributeMappings, CreatedBy: p.CreatedBy, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
}

func encodeRole(ro *Role) stateRole {
	return stateRole{Name: ro.Name, ID: ro.ID, Path: ro.Path, Description: ro.Description, MaxSessionDuration: ro.MaxSessionDuration,
		AssumeRolePolicyDocument: ro.TrustPolicyDocument, ManagedPolicyARNs: ro.ManagedPolicyARNs, InlinePolicies: ro.InlinePolicies,
		PermissionsBoundary: ro.PermissionsBoundary, Tags: toJSONTags(ro.Tags), CreatedAt: ro.CreatedAt}
}

func toJSONTags(tags []Tag) []jsonTag {
	var out []jsonTag
	for _, t := range tags {
		out = append(out, jsonTag(t))
	}
	return out
}

func fromJSONTags(tags []jsonTag) []Tag {
	var out []Tag
	for _, t := range tags {
		out = append(out, Tag(t))
	}
	return out
}

// decodeState rebuilds resources from a state file, checking each as the
// control plane checks what it creates.
func (e *Emulator) decodeState(data []byte) (*resources, *stateFile, error) {
	var f stateFile
	if err := decodeStrict(data, &f); err != nil {
		return nil, nil, fmt.Errorf("not a state file (corrupt, or not written by keyless emulator): %w", err)
	}
	switch {
	case f.Format == stateFormatV1 && f.Generation == 0 && f.ID == "":
	case f.Format == stateFormat && f.Generation > 0 && f.ID != "":
	case f.Format == stateFormat || f.Format == stateFormatV1:
		return nil, nil, fmt.Errorf("not a state file (corrupt, or not written by keyless emulator): format %q with generation %d and id %q", f.Format, f.Generation, f.ID)
	default:
		return nil, nil, fmt.Errorf("format %q, want %q (written by another version of keyless emulator?)", f.Format, stateFormat)
	}
	if f.Account != e.st.account || f.Region != e.st.region {
		return nil, nil, fmt.Errorf("it holds account %s in region %s, but the seed is for account %s in region %s", f.Account, f.Region, e.st.account, e.st.region)
	}
	r := newResources()
	var ch changes
	ch.Put.TrustAnchors, ch.Put.CRLs, ch.Put.Profiles, ch.Put.Roles, ch.Put.Tags = f.TrustAnchors, f.CRLs, f.Profiles, f.Roles, f.Tags
	if err := e.apply(r, &ch); err != nil {
		return nil, nil, err
	}
	return r, &f, nil
}

// decodeStrict decodes one JSON value, refusing unknown fields and
// anything after it.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if len(bytes.TrimSpace(data[dec.InputOffset():])) != 0 {
		return errors.New("data after its JSON object")
	}
	return nil
}

// apply makes the changes in ch to r (whose maps are r's own to change),
// checking each resource as the control plane checks what it creates.
func (e *Emulator) apply(r *resources, ch *changes) error {
	for _, id := range ch.Delete.TrustAnchors {
		delete(r.anchors, id)
	}
	for _, id := range ch.Delete.CRLs {
		delete(r.crls, id)
	}
	for _, id := range ch.Delete.Profiles {
		delete(r.profiles, id)
	}
	for _, name := range ch.Delete.Roles {
		delete(r.roles, name)
	}
	for _, arn := range ch.Delete.Tags {
		delete(r.tags, arn)
	}
	for _, a := range ch.Put.TrustAnchors {
		certs, err := parseBundle([]byte(a.CertificateBundlePEM))
		if err != nil {
			return fmt.Errorf("trust anchor %s: %w", a.ID, err)
		}
		ta := &TrustAnchor{Name: a.Name, ID: a.ID, ARN: e.st.arn("rolesanywhere", e.st.region, "trust-anchor/"+a.ID), Enabled: a.Enabled,
			NotificationSettings: a.NotificationSettings, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
		ta.setCertificates(certs, a.CertificateBundlePEM)
		r.anchors[ta.ID] = ta
	}
	for _, c := range ch.Put.CRLs {
		crl, err := parseCRL(c.Data)
		if err != nil {
			return fmt.Errorf("CRL %s: %w", c.ID, err)
		}
		crl.ID, crl.Name, crl.Enabled, crl.TrustAnchorARN = c.ID, c.Name, c.Enabled, c.TrustAnchorARN
		crl.ARN = e.st.arn("rolesanywhere", e.st.region, "crl/"+c.ID)
		crl.Source, crl.CreatedAt, crl.UpdatedAt = c.Name, c.CreatedAt, c.UpdatedAt
		r.crls[crl.ID] = crl
	}
	for _, p := range ch.Put.Profiles {
		if p.AttributeMappings == nil {
			p.AttributeMappings = defaultAttributeMappings()
		}
		r.profiles[p.ID] = &Profile{Name: p.Name, ID: p.ID, ARN: e.st.arn("rolesanywhere", e.st.region, "profile/"+p.ID), Enabled: p.Enabled,
			RoleARNs: p.RoleARNs, DurationSeconds: p.DurationSeconds, AcceptRoleSessionName: p.AcceptRoleSessionName,
			RequireInstanceProperties: p.RequireInstanceProperties, ManagedPolicyARNs: p.ManagedPolicyARNs, SessionPolicy: p.SessionPolicy,
			AttributeMappings: p.AttributeMappings, CreatedBy: p.CreatedBy, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
	}
	for _, ro := range ch.Put.Roles {
		pol, err := iampolicy.ParseTrustPolicy([]byte(ro.AssumeRolePolicyDocument))
		if err != nil {
			return fmt.Errorf("role %s: trust policy: %w", ro.Name, err)
		}
		r.roles[ro.Name] = &Role{Name: ro.Name, ID: ro.ID, Path: ro.Path, ARN: e.roleARN(ro.Path, ro.Name), Description: ro.Description,
			MaxSessionDuration: ro.MaxSessionDuration, TrustPolicy: pol, TrustPolicyDocument: ro.AssumeRolePolicyDocument,
			ManagedPolicyARNs: ro.ManagedPolicyARNs, InlinePolicies: ro.InlinePolicies, PermissionsBoundary: ro.PermissionsBoundary,
			Tags: fromJSONTags(ro.Tags), CreatedAt: ro.CreatedAt}
	}
	for arn, tags := range ch.Put.Tags {
		r.tags[arn] = fromJSONTags(tags)
	}
	return nil
}

// roleARN is the ARN of a role with this path and name.
func (e *Emulator) roleARN(path, name string) string {
	if path == "" {
		path = "/"
	}
	return "arn:" + e.st.partition + ":iam::" + e.st.account + ":role" + path + name
}

// sortedTags returns tags ordered by key.
func sortedTags(tags []Tag) []Tag {
	out := slices.Clone(tags)
	slices.SortFunc(out, func(a, b Tag) int { return strings.Compare(a.Key, b.Key) })
	return out
}
