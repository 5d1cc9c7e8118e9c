package emulator

import (
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
// refused rather than misread.
const stateFormat = "keyless-emulator-state/1"

// The state file: every resource as the control plane's calls would
// recreate it, in a stable order so that the same state writes the same
// bytes.
type stateFile struct {
	Format       string               `json:"format"`
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

// openState loads the state file at path when it exists; otherwise it
// records initial (the seed's resources) there. Either way every later
// change is written to it before it is answered. The temporary files of
// a writer killed before its rename are removed first: they hold a state
// never answered, and nothing reads them.
func (e *Emulator) openState(path string, initial *resources) (*resources, error) {
	for _, tmp := range atomicfile.Cleanup(path) {
		e.log.Info("removed the temporary file of an interrupted state write", "file", tmp)
	}
	e.st.persist = func(r *resources) error { return e.writeState(path, r) }
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, &StateFileError{Path: path, Err: err}
	}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := e.writeState(path, initial); err != nil {
			return nil, &StateFileError{Path: path, Err: err}
		}
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
	res, err := e.decodeState(data)
	if err != nil {
		return nil, &StateFileError{Path: path, Refused: true, Err: err}
	}
	if len(e.seed.TrustAnchors)+len(e.seed.Roles)+len(e.seed.Profiles) > 0 {
		// The state wins: the seed made it, and the control plane may have
		// changed or deleted what the seed made since.
		e.log.Info("state file loaded; the seed's resources were applied when it was created and are not applied again (move the state file away to start from the seed)", "state", path)
	}
	return res, nil
}

func (e *Emulator) writeState(path string, r *resources) error {
	data, err := json.MarshalIndent(e.encodeState(r), "", "  ")
	if err != nil {
		return err
	}
	// 0600: the state names the account's roles and policies; it holds
	// no secret (operators stay in the seed), but nothing outside the
	// emulator needs to read it.
	if err := atomicfile.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing it: %w", err)
	}
	return nil
}

func (e *Emulator) encodeState(r *resources) *stateFile {
	f := &stateFile{Format: stateFormat, Account: e.st.account, Region: e.st.region,
		TrustAnchors: []stateAnchor{}, CRLs: []stateCRL{}, Profiles: []stateProfile{}, Roles: []stateRole{}}
	for _, id := range sortedKeys(r.anchors) {
		ta := r.anchors[id]
		f.TrustAnchors = append(f.TrustAnchors, stateAnchor{ID: ta.ID, Name: ta.Name, Enabled: ta.Enabled, CertificateBundlePEM: ta.BundlePEM,
			NotificationSettings: ta.NotificationSettings, CreatedAt: ta.CreatedAt, UpdatedAt: ta.UpdatedAt})
	}
	for _, id := range sortedKeys(r.crls) {
		c := r.crls[id]
		f.CRLs = append(f.CRLs, stateCRL{ID: c.ID, Name: c.Name, Enabled: c.Enabled, TrustAnchorARN: c.TrustAnchorARN, Data: c.Data,
			CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt})
	}
	for _, id := range sortedKeys(r.profiles) {
		p := r.profiles[id]
		f.Profiles = append(f.Profiles, stateProfile{ID: p.ID, Name: p.Name, Enabled: p.Enabled, RoleARNs: p.RoleARNs, DurationSeconds: p.DurationSeconds,
			AcceptRoleSessionName: p.AcceptRoleSessionName, RequireInstanceProperties: p.RequireInstanceProperties, ManagedPolicyARNs: p.ManagedPolicyARNs,
			SessionPolicy: p.SessionPolicy, AttributeMappings: p.AttributeMappings, CreatedBy: p.CreatedBy, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt})
	}
	for _, name := range sortedKeys(r.roles) {
		ro := r.roles[name]
		f.Roles = append(f.Roles, stateRole{Name: ro.Name, ID: ro.ID, Path: ro.Path, Description: ro.Description, MaxSessionDuration: ro.MaxSessionDuration,
			AssumeRolePolicyDocument: ro.TrustPolicyDocument, ManagedPolicyARNs: ro.ManagedPolicyARNs, InlinePolicies: ro.InlinePolicies,
			PermissionsBoundary: ro.PermissionsBoundary, Tags: toJSONTags(ro.Tags), CreatedAt: ro.CreatedAt})
	}
	if len(r.tags) > 0 {
		f.Tags = map[string][]jsonTag{}
		for arn, tags := range r.tags {
			f.Tags[arn] = toJSONTags(tags)
		}
	}
	return f
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
func (e *Emulator) decodeState(data []byte) (*resources, error) {
	var f stateFile
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("not a state file (corrupt, or not written by keyless emulator): %w", err)
	}
	if rest := strings.TrimSpace(string(data[dec.InputOffset():])); rest != "" {
		return nil, errors.New("not a state file (corrupt, or not written by keyless emulator): data after its JSON object")
	}
	if f.Format != stateFormat {
		return nil, fmt.Errorf("format %q, want %q (written by another version of keyless emulator?)", f.Format, stateFormat)
	}
	if f.Account != e.st.account || f.Region != e.st.region {
		return nil, fmt.Errorf("it holds account %s in region %s, but the seed is for account %s in region %s", f.Account, f.Region, e.st.account, e.st.region)
	}
	r := newResources()
	for _, a := range f.TrustAnchors {
		certs, err := parseBundle([]byte(a.CertificateBundlePEM))
		if err != nil {
			return nil, fmt.Errorf("trust anchor %s: %w", a.ID, err)
		}
		ta := &TrustAnchor{Name: a.Name, ID: a.ID, ARN: e.st.arn("rolesanywhere", e.st.region, "trust-anchor/"+a.ID), Enabled: a.Enabled,
			NotificationSettings: a.NotificationSettings, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
		ta.setCertificates(certs, a.CertificateBundlePEM)
		r.anchors[ta.ID] = ta
	}
	for _, c := range f.CRLs {
		crl, err := parseCRL(c.Data)
		if err != nil {
			return nil, fmt.Errorf("CRL %s: %w", c.ID, err)
		}
		crl.ID, crl.Name, crl.Enabled, crl.TrustAnchorARN = c.ID, c.Name, c.Enabled, c.TrustAnchorARN
		crl.ARN = e.st.arn("rolesanywhere", e.st.region, "crl/"+c.ID)
		crl.Source, crl.CreatedAt, crl.UpdatedAt = c.Name, c.CreatedAt, c.UpdatedAt
		r.crls[crl.ID] = crl
	}
	for _, p := range f.Profiles {
		if p.AttributeMappings == nil {
			p.AttributeMappings = defaultAttributeMappings()
		}
		r.profiles[p.ID] = &Profile{Name: p.Name, ID: p.ID, ARN: e.st.arn("rolesanywhere", e.st.region, "profile/"+p.ID), Enabled: p.Enabled,
			RoleARNs: p.RoleARNs, DurationSeconds: p.DurationSeconds, AcceptRoleSessionName: p.AcceptRoleSessionName,
			RequireInstanceProperties: p.RequireInstanceProperties, ManagedPolicyARNs: p.ManagedPolicyARNs, SessionPolicy: p.SessionPolicy,
			AttributeMappings: p.AttributeMappings, CreatedBy: p.CreatedBy, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
	}
	for _, ro := range f.Roles {
		pol, err := iampolicy.ParseTrustPolicy([]byte(ro.AssumeRolePolicyDocument))
		if err != nil {
			return nil, fmt.Errorf("role %s: trust policy: %w", ro.Name, err)
		}
		r.roles[ro.Name] = &Role{Name: ro.Name, ID: ro.ID, Path: ro.Path, ARN: e.roleARN(ro.Path, ro.Name), Description: ro.Description,
			MaxSessionDuration: ro.MaxSessionDuration, TrustPolicy: pol, TrustPolicyDocument: ro.AssumeRolePolicyDocument,
			ManagedPolicyARNs: ro.ManagedPolicyARNs, InlinePolicies: ro.InlinePolicies, PermissionsBoundary: ro.PermissionsBoundary,
			Tags: fromJSONTags(ro.Tags), CreatedAt: ro.CreatedAt}
	}
	for arn, tags := range f.Tags {
		r.tags[arn] = fromJSONTags(tags)
	}
	return r, nil
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
