package release

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// SumsName is the checksum file of a dist directory.
const SumsName = "SHA256SUMS"

// FileSHA256 returns the hex SHA-256 of the file at path.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Sums returns the hex SHA-256 of every regular file in dir except
// SHA256SUMS, by file name. Anything else in dir (a directory, a link)
// is an error: a dist directory holds only artefacts.
func Sums(dir string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("checksums of %s: %w", dir, err)
	}
	sums := map[string]string{}
	for _, e := range entries {
		if e.Name() == SumsName {
			continue
		}
		if !e.Type().IsRegular() {
			return nil, fmt.Errorf("checksums of %s: %s is not a regular file; a dist directory holds only artefacts", dir, e.Name())
		}
		s, err := FileSHA256(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("checksums of %s: %w", dir, err)
		}
		sums[e.Name()] = s
	}
	return sums, nil
}

// FormatSums renders sums in sha256sum's format, "<hex>  <name>\n",
// sorted by name.
func FormatSums(sums map[string]string) []byte {
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	slices.Sort(names)
	var b bytes.Buffer
	for _, n := range names {
		fmt.Fprintf(&b, "%s  %s\n", sums[n], n)
	}
	return b.Bytes()
}

// WriteSums writes dir/SHA256SUMS over every other file in dir and
// returns its path. It must run last: a file written after it is not
// covered.
func WriteSums(dir string) (string, error) {
	sums, err := Sums(dir)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, SumsName)
	if err := os.WriteFile(path, FormatSums(sums), 0o644); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return path, nil
}

var sumLine = regexp.MustCompile(`^([0-9a-f]{64})  ([^/\\\x00-\x1f\x7f]+)$`)

// ParseSums reads a SHA256SUMS file: one "<64 hex>  <name>\n" line per
// file, names without directories or control characters, each once,
// sorted. It is strict: what it accepts is what FormatSums writes.
func ParseSums(b []byte) (map[string]string, error) {
	sums := map[string]string{}
	if len(b) == 0 {
		return sums, nil
	}
	if b[len(b)-1] != '\n' {
		return nil, fmt.Errorf("%s: the last line has no newline (the file may be cut short)", SumsName)
	}
	var last string
	for i, line := range strings.Split(string(b[:len(b)-1]), "\n") {
		n := i + 1
		m := sumLine.FindStringSubmatch(line)
		if m == nil || m[2] == "." || m[2] == ".." {
			return nil, fmt.Errorf("%s line %d: %q is not \"<64 lower-case hex>  <file name>\"", SumsName, n, line)
		}
		if _, dup := sums[m[2]]; dup {
			return nil, fmt.Errorf("%s line %d: %s is listed twice", SumsName, n, m[2])
		}
		if m[2] < last {
			return nil, fmt.Errorf("%s line %d: %s is out of order (the file is sorted by name)", SumsName, n, m[2])
		}
		last = m[2]
		sums[m[2]] = m[1]
	}
	return sums, nil
}

// ErrVerify is wrapped by every Verify failure.
var ErrVerify = errors.New("dist does not verify")

// Verify checks dir against its SHA256SUMS: every listed file exists and
// has its listed SHA-256, and every file in dir other than SHA256SUMS is
// listed (an unlisted file would be an artefact nobody can check). The
// error names every problem and wraps ErrVerify.
func Verify(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, SumsName))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrVerify, err)
	}
	want, err := ParseSums(b)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrVerify, err)
	}
	if len(want) == 0 {
		return fmt.Errorf("%w: %s lists no files", ErrVerify, filepath.Join(dir, SumsName))
	}
	var problems []string
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		got, err := FileSHA256(filepath.Join(dir, n))
		switch {
		case errors.Is(err, os.ErrNotExist):
			problems = append(problems, n+": listed but missing")
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s: %v", n, err))
		case got != want[n]:
			problems = append(problems, fmt.Sprintf("%s: SHA-256 %s, listed %s", n, got, want[n]))
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrVerify, err)
	}
	for _, e := range entries {
		if _, ok := want[e.Name()]; !ok && e.Name() != SumsName {
			problems = append(problems, e.Name()+": in the directory but not listed")
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s:\n  %s", ErrVerify, dir, strings.Join(problems, "\n  "))
	}
	return nil
}
