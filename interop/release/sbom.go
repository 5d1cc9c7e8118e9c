package release

import (
	"crypto/sha1"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// SBOMName is the file name of t's SBOM in dist:
// keyless_<ver>_<os>_<arch>.sbom.cdx.json.
func SBOMName(p Plan, t Target) string { return ArtefactBase(p, t) + ".sbom.cdx.json" }

// The CycloneDX 1.5 JSON shapes keyless writes: only the fields it fills,
// in a fixed order, so the output is stable.
type (
	cdxBOM struct {
		Schema       string         `json:"$schema"`
		BOMFormat    string         `json:"bomFormat"`
		SpecVersion  string         `json:"specVersion"`
		SerialNumber string         `json:"serialNumber"`
		Version      int            `json:"version"`
		Metadata     cdxMetadata    `json:"metadata"`
		Components   []cdxComponent `json:"components"`
	}
	cdxMetadata struct {
		Timestamp string       `json:"timestamp"`
		Tools     cdxTools     `json:"tools"`
		Component cdxComponent `json:"component"`
	}
	cdxTools struct {
		Components []cdxComponent `json:"components"`
	}
	cdxComponent struct {
		Type        string        `json:"type"`
		BOMRef      string        `json:"bom-ref,omitempty"`
		Name        string        `json:"name"`
		Version     string        `json:"version,omitempty"`
		Description string        `json:"description,omitempty"`
		PURL        string        `json:"purl,omitempty"`
		Hashes      []cdxHash     `json:"hashes,omitempty"`
		Properties  []cdxProperty `json:"properties,omitempty"`
	}
	cdxHash struct {
		Alg     string `json:"alg"`
		Content string `json:"content"`
	}
	cdxProperty struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
)

// Property names keyless's SBOMs use. A Go module's h1 hash is not the
// SHA-256 of one file (it hashes a list of file hashes, see
// golang.org/x/mod/sumdb/dirhash), so it is a property, not a CycloneDX
// hash; it is what `go mod verify` and go.sum check.
const (
	PropModuleSum  = "golang:module:h1"
	PropReplaces   = "golang:module:replaces"
	PropBuildPrefx = "golang:build:"
)

// SBOM returns the CycloneDX 1.5 JSON SBOM of the binary at bin, built
// for t, read from the binary itself (debug/buildinfo): the keyless main
// module as metadata.component, and as components every module linked
// into it with its version, purl and h1 sum, and the Go standard library
// of the toolchain that built it. The serial number is a name-based UUID
// of p.Commit and the SBOM's file name, and the timestamp is p.Epoch, so
// the same binary gives the same bytes.
func SBOM(p Plan, t Target, bin string) ([]byte, error) {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("SBOM of %s: reading build information: %w", bin, err)
	}
	name := SBOMName(p, t)
	main := cdxComponent{
		Type:        "application",
		BOMRef:      purl(bi.Main.Path, p.Version),
		Name:        "keyless",
		Version:     p.Version,
		Description: fmt.Sprintf("keyless %s for %s, commit %s", p.Version, t, p.Commit),
		PURL:        purl(bi.Main.Path, p.Version),
	}
	for _, s := range bi.Settings {
		main.Properties = append(main.Properties, cdxProperty{Name: PropBuildPrefx + s.Key, Value: s.Value})
	}
	main.Properties = append(main.Properties, cdxProperty{Name: "golang:module:path", Value: bi.Main.Path})
	slices.SortFunc(main.Properties, func(a, b cdxProperty) int { return cmpString(a.Name, b.Name) })

	var comps []cdxComponent
	for _, d := range bi.Deps {
		m := d
		var props []cdxProperty
		if d.Replace != nil {
			m = d.Replace
			props = append(props, cdxProperty{Name: PropReplaces, Value: d.Path + "@" + d.Version})
		}
		if m.Sum != "" {
			props = append(props, cdxProperty{Name: PropModuleSum, Value: m.Sum})
		}
		slices.SortFunc(props, func(a, b cdxProperty) int { return cmpString(a.Name, b.Name) })
		comps = append(comps, cdxComponent{
			Type:       "library",
			BOMRef:     purl(m.Path, m.Version),
			Name:       m.Path,
			Version:    m.Version,
			PURL:       purl(m.Path, m.Version),
			Properties: props,
		})
	}
	// The standard library and runtime are linked in as well and carry
	// their own vulnerabilities; scanners know them as pkg:golang/std.
	comps = append(comps, cdxComponent{
		Type:        "library",
		BOMRef:      purl("std", bi.GoVersion),
		Name:        "std",
		Version:     bi.GoVersion,
		Description: "the Go standard library and runtime, from the toolchain that built the binary",
		PURL:        purl("std", bi.GoVersion),
	})
	slices.SortFunc(comps, func(a, b cdxComponent) int { return cmpString(a.BOMRef, b.BOMRef) })

	bom := cdxBOM{
		Schema:       "http://cyclonedx.org/schema/bom-1.5.schema.json",
		BOMFormat:    "CycloneDX",
		SpecVersion:  "1.5",
		SerialNumber: "urn:uuid:" + nameUUID(sbomNamespace, p.Commit+"/"+name),
		Version:      1,
		Metadata: cdxMetadata{
			Timestamp: p.Epoch.UTC().Format(time.RFC3339),
			Tools: cdxTools{Components: []cdxComponent{{
				Type: "application", Name: "keyless-release", Version: p.Version,
				Description: "interop/release in the keyless repository, reading debug/buildinfo",
			}}},
			Component: main,
		},
		Components: comps,
	}
	b, err := json.MarshalIndent(bom, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("SBOM of %s: %w", bin, err)
	}
	return append(b, '\n'), nil
}

// WriteSBOM writes t's SBOM into dir and returns its path.
func WriteSBOM(p Plan, t Target, bin, dir string) (string, error) {
	b, err := SBOM(p, t, bin)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, SBOMName(p, t))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return "", fmt.Errorf("SBOM of %s: %w", t, err)
	}
	return path, nil
}

// purl is the package URL of a Go module version: the module path keeps
// its slashes (purl's namespace/name) and its case; anything outside
// purl's unreserved characters (a version's "+incompatible") is
// percent-encoded.
func purl(path, version string) string {
	return "pkg:golang/" + purlEscape(path) + "@" + purlEscape(version)
}

func purlEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("-._~/", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// sbomNamespace is the UUID namespace of keyless SBOM serial numbers: the
// RFC 9562 name-based UUID of the URL below in the URL namespace.
var sbomNamespace = nameUUIDBytes(urlNamespace, "https://github.com/keyless-dev/keyless/sbom")

// urlNamespace is RFC 9562's NameSpace_URL, 6ba7b811-9dad-11d1-80b4-00c04fd430c8.
var urlNamespace = [16]byte{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}

// nameUUID is the version 5 (SHA-1, name-based) UUID of name in ns, as text.
func nameUUID(ns [16]byte, name string) string {
	u := nameUUIDBytes(ns, name)
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

func nameUUIDBytes(ns [16]byte, name string) [16]byte {
	h := sha1.New()
	h.Write(ns[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return u
}
