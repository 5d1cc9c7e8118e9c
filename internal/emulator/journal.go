package emulator

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"slices"
	"sync"
	"unsafe"

	"github.com/keyless-dev/keyless/internal/atomicfile"
	"github.com/keyless-dev/keyless/internal/secretfile"
)

// The state on disk is a snapshot (the state file, rewritten atomically
// and rarely) and a journal next to it (path+".journal") to which each
// change appends one record, fdatasynced before the change is answered,
// so that a change costs what changed, not the whole state.
//
// The journal is a sequence of frames: a 12-byte header (the payload's
// length, big-endian uint32; the CRC-32C of the payload; the CRC-32C of
// the header's first 8 bytes) and a JSON payload. The first frame names
// the journal's format and the generation and id of the snapshot it
// applies to; each later frame is one change (journalRecord), numbered
// from 1.
//
// Loading: a journal of an older generation than the snapshot was folded
// into it (a compaction stopped before replacing the journal) and is
// ignored; one of a newer generation, or of the same generation but
// another id, belongs to another snapshot and is refused. Within the
// journal, a torn last frame (a crash mid-append: too short, a header
// that is all zeros to the end, or a payload checksum that fails on the
// file's last frame) is dropped, since the change it held was never
// answered; any other bad frame is refused, naming its offset.
//
// Compaction writes a new snapshot (generation+1, new id) atomically,
// then a new journal holding only its first frame atomically; a crash
// between the two leaves the new snapshot with the old journal, which is
// ignored. It happens at start when the journal holds records, and when
// the journal outgrows the snapshot (and compactMin).
const (
	journalSuffix = ".journal"
	journalFormat = "keyless-emulator-journal/1"
	frameHeader   = 12
	// maxFrame bounds a record: larger than any change the control plane
	// accepts (a CRL or bundle of a few MB), small enough to allocate.
	maxFrame = 256 << 20
)

// defaultCompactMin is the journal size below which it is never
// compacted, so that a small state is not rewritten every few changes.
const defaultCompactMin = 1 << 20

var (
	castagnoliOnce  sync.Once
	castagnoliTable *crc32.Table
)

// castagnoli is the CRC-32C table, made on first use: in package init,
// every keyless command (a credential-process cache hit too) would make
// its 9 KB.
func castagnoli() *crc32.Table {
	castagnoliOnce.Do(func() { castagnoliTable = crc32.MakeTable(crc32.Castagnoli) })
	return castagnoliTable
}

// journalHeader is the journal's first frame.
type journalHeader struct {
	Format     string `json:"format"`
	Generation uint64 `json:"generation"`
	Snapshot   string `json:"snapshot"`
}

// journalRecord is one change: what it created or replaced, in full, and
// what it deleted, by key.
type journalRecord struct {
	Seq uint64 `json:"seq"`
	changes
}

type changes struct {
	Put struct {
		TrustAnchors []stateAnchor        `json:"trustAnchors,omitempty"`
		CRLs         []stateCRL           `json:"crls,omitempty"`
		Profiles     []stateProfile       `json:"profiles,omitempty"`
		Roles        []stateRole          `json:"roles,omitempty"`
		Tags         map[string][]jsonTag `json:"tags,omitempty"`
	} `json:"put"`
	Delete struct {
		TrustAnchors []string `json:"trustAnchors,omitempty"`
		CRLs         []string `json:"crls,omitempty"`
		Profiles     []string `json:"profiles,omitempty"`
		Roles        []string `json:"roles,omitempty"`
		Tags         []string `json:"tags,omitempty"`
	} `json:"delete"`
}

func (c *changes) empty() bool {
	p, d := &c.Put, &c.Delete
	return len(p.TrustAnchors)+len(p.CRLs)+len(p.Profiles)+len(p.Roles)+len(p.Tags)+
		len(d.TrustAnchors)+len(d.CRLs)+len(d.Profiles)+len(d.Roles)+len(d.Tags) == 0
}

// diffResources is what changed from prev to next. Versions are copy on
// write (see state.update): an object that did not change is the same
// pointer in both, and a tag list that did not change the same slice.
func diffResources(prev, next *resources) *changes {
	var c changes
	var ids []string
	ids, c.Delete.TrustAnchors = changed(prev.anchors, next.anchors, func(a, b *TrustAnchor) bool { return a == b })
	for _, id := range ids {
		c.Put.TrustAnchors = append(c.Put.TrustAnchors, encodeAnchor(next.anchors[id]))
	}
	ids, c.Delete.CRLs = changed(prev.crls, next.crls, func(a, b *CRL) bool { return a == b })
	for _, id := range ids {
		c.Put.CRLs = append(c.Put.CRLs, encodeCRL(next.crls[id]))
	}
	ids, c.Delete.Profiles = changed(prev.profiles, next.profiles, func(a, b *Profile) bool { return a == b })
	for _, id := range ids {
		c.Put.Profiles = append(c.Put.Profiles, encodeProfile(next.profiles[id]))
	}
	ids, c.Delete.Roles = changed(prev.roles, next.roles, func(a, b *Role) bool { return a == b })
	for _, name := range ids {
		c.Put.Roles = append(c.Put.Roles, encodeRole(next.roles[name]))
	}
	ids, c.Delete.Tags = changed(prev.tags, next.tags, sameSlice)
	for _, arn := range ids {
		if c.Put.Tags == nil {
			c.Put.Tags = map[string][]jsonTag{}
		}
		c.Put.Tags[arn] = toJSONTags(next.tags[arn])
	}
	return &c
}

// changed returns, in order, the keys of next whose value is not the
// same as prev's (new or replaced), and the keys of prev that next lacks.
func changed[V any](prev, next map[string]V, same func(a, b V) bool) (put, deleted []string) {
	kept := 0
	for k, v := range next {
		pv, ok := prev[k]
		if ok {
			kept++
		}
		if !ok || !same(pv, v) {
			put = append(put, k)
		}
	}
	// Every key of prev is in next unless fewer of them were found there.
	if kept < len(prev) {
		for k := range prev {
			if _, ok := next[k]; !ok {
				deleted = append(deleted, k)
			}
		}
	}
	slices.Sort(put)
	slices.Sort(deleted)
	return put, deleted
}

// sameSlice reports whether a and b are the same slice (not merely equal).
func sameSlice(a, b []Tag) bool {
	return len(a) == len(b) && unsafe.SliceData(a) == unsafe.SliceData(b)
}

// journal records changes in the state file's journal. Its methods run
// under state.mu (record) or before the emulator serves (the rest).
type journal struct {
	e           *Emulator
	path, jpath string
	// sync makes an appended record durable: fdatasync where there is
	// one. Tests replace it to see when it is called or make it fail.
	sync func(*os.File) error
	// compactMin is defaultCompactMin (tests lower it).
	compactMin int64

	// f is the journal open for appending, or nil when the next change
	// must write a new snapshot instead (after a failed write).
	f *os.File
	// gen and id are the snapshot's; seq is the last record's number.
	gen      uint64
	id       string
	seq      uint64
	size     int64
	snapSize int64
}

// record durably records next, the version after prev, before it is
// published; on error the change is refused, and the files hold prev.
func (j *journal) record(prev, next *resources) error {
	if j.f == nil {
		if err := j.compact(next); err != nil {
			// The snapshot may hold next already (its journal failed):
			// put prev back, so a refused change is not found at the
			// next start.
			if rerr := j.compact(prev); rerr != nil {
				return fmt.Errorf("%w; writing the previous state: %v", err, rerr)
			}
			return err
		}
		return nil
	}
	c := diffResources(prev, next)
	if c.empty() {
		return nil
	}
	payload, err := json.Marshal(journalRecord{Seq: j.seq + 1, changes: *c})
	if err != nil {
		return err
	}
	frame := appendFrame(nil, payload)
	if err := j.append(frame); err != nil {
		// The record may be on disk in part, or whole but not durably: no
		// further record may follow it. A new snapshot of prev leaves the
		// refused change out and starts a new journal.
		j.f.Close()
		j.f = nil
		if cerr := j.compact(prev); cerr != nil {
			return fmt.Errorf("appending to %s: %w; writing the previous state: %v", j.jpath, err, cerr)
		}
		return fmt.Errorf("appending to %s: %w", j.jpath, err)
	}
	j.seq++
	j.size += int64(len(frame))
	if j.size > max(j.snapSize, j.compactMin) {
		// The change is durable already; a failed compaction leaves the
		// next change to write a snapshot (j.f is nil then).
		if err := j.compact(next); err != nil {
			j.e.log.Warn("compacting the state journal failed; the next change writes the whole state", "state", j.path, "err", err)
		}
	}
	return nil
}

func (j *journal) append(frame []byte) error {
	if _, err := j.f.Write(frame); err != nil {
		return err
	}
	return j.sync(j.f)
}

// compact writes r as a new snapshot, then a new empty journal for it. A
// crash before the snapshot's rename leaves the old snapshot and journal;
// after it, the new snapshot and the old journal, of an older generation,
// ignored at load; after the journal's rename, both new.
func (j *journal) compact(r *resources) error {
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
	id, err := j.e.newID()
	if err != nil {
		return err
	}
	gen := j.gen + 1
	data, err := j.e.encodeSnapshot(r, gen, id)
	if err != nil {
		return err
	}
	// 0600: the state names the account's roles and policies; it holds
	// no secret (operators stay in the seed), but nothing outside the
	// emulator needs to read it.
	if err := atomicfile.WriteFile(j.path, data, 0o600); err != nil {
		return fmt.Errorf("writing it: %w", err)
	}
	j.gen, j.id = gen, id
	header, err := json.Marshal(journalHeader{Format: journalFormat, Generation: gen, Snapshot: id})
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(j.jpath, appendFrame(nil, header), 0o600); err != nil {
		return fmt.Errorf("writing its journal: %w", err)
	}
	j.seq = 0
	return j.reopen(int64(len(data)))
}

// reopen opens the journal for appending.
func (j *journal) reopen(snapSize int64) error {
	f, err := os.OpenFile(j.jpath, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	j.f, j.size, j.snapSize = f, fi.Size(), snapSize
	return nil
}

// load applies the journal, when it is the snapshot's, to r. It reports
// whether the journal can be appended to as it is (the snapshot's, whole,
// with no record); otherwise the caller compacts.
func (j *journal) load(r *resources) (reuse bool, err error) {
	refused := func(format string, args ...any) error {
		return &StateFileError{Path: j.jpath, Refused: true, Err: fmt.Errorf(format, args...)}
	}
	data, err := os.ReadFile(j.jpath)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, &StateFileError{Path: j.jpath, Err: err}
	}
	// It is applied to the state: the same owner rules as the state file.
	if err := secretfile.CheckOwned("emulator state journal", j.jpath); err != nil {
		return false, &StateFileError{Path: j.jpath, Err: err}
	}
	frames := frameReader{data: data, torn: -1}
	payload, err := frames.next()
	if err != nil || payload == nil {
		if err == nil {
			err = errors.New("no header")
		}
		return false, refused("not a journal (corrupt, or not written by keyless emulator): %v", err)
	}
	var h journalHeader
	if err := decodeStrict(payload, &h); err != nil {
		return false, refused("not a journal (corrupt, or not written by keyless emulator): %v", err)
	}
	if h.Format != journalFormat {
		return false, refused("format %q, want %q (written by another version of keyless emulator?)", h.Format, journalFormat)
	}
	switch {
	case h.Generation < j.gen:
		j.e.log.Info("ignored a journal already folded into the state file", "journal", j.jpath, "generation", h.Generation, "state_generation", j.gen)
		return false, nil
	case h.Generation != j.gen || h.Snapshot != j.id:
		return false, refused("it is for generation %d (snapshot %s) of the state file, but %s is generation %d (snapshot %s): it belongs to another state file; move one of them away",
			h.Generation, h.Snapshot, j.path, j.gen, j.id)
	}
	n := 0
	for {
		off := frames.off
		payload, err := frames.next()
		if err != nil {
			return false, refused("record at offset %d: %v", off, err)
		}
		if payload == nil {
			break
		}
		var rec journalRecord
		if err := decodeStrict(payload, &rec); err != nil {
			return false, refused("record at offset %d: %v", off, err)
		}
		if rec.Seq != uint64(n+1) {
			return false, refused("record at offset %d: number %d, want %d", off, rec.Seq, n+1)
		}
		if err := j.e.apply(r, &rec.changes); err != nil {
			return false, refused("record at offset %d: %v", off, err)
		}
		n++
	}
	if frames.torn >= 0 {
		j.e.log.Warn("dropped the torn last record of the state journal (a change interrupted before it was answered)", "journal", j.jpath, "offset", frames.torn)
	}
	return n == 0 && frames.torn < 0, nil
}

// appendFrame appends payload, framed, to b.
func appendFrame(b, payload []byte) []byte {
	var h [frameHeader]byte
	binary.BigEndian.PutUint32(h[0:4], uint32(len(payload)))
	binary.BigEndian.PutUint32(h[4:8], crc32.Checksum(payload, castagnoli()))
	binary.BigEndian.PutUint32(h[8:12], crc32.Checksum(h[:8], castagnoli()))
	b = append(b, h[:]...)
	return append(b, payload...)
}

// frameReader reads frames from a journal's bytes.
type frameReader struct {
	data []byte
	off  int
	// torn is the offset of a torn last frame, dropped, or -1.
	torn int
}

// next returns the next frame's payload, nil at the end (after a torn
// last frame, which it records in torn), or an error for a bad frame
// that is not the last.
func (r *frameReader) next() ([]byte, error) {
	rest := r.data[r.off:]
	if len(rest) == 0 {
		return nil, nil
	}
	tear := func() ([]byte, error) {
		r.torn = r.off
		r.off = len(r.data)
		return nil, nil
	}
	if len(rest) < frameHeader {
		return tear()
	}
	h := rest[:frameHeader]
	if crc32.Checksum(h[:8], castagnoli()) != binary.BigEndian.Uint32(h[8:12]) {
		// A crash may extend the file before its data reaches the disk,
		// which then reads as zeros.
		if allZero(rest) {
			return tear()
		}
		return nil, errors.New("corrupt frame header")
	}
	n := int(binary.BigEndian.Uint32(h[0:4]))
	if n > maxFrame {
		return nil, fmt.Errorf("frame of %d bytes, more than %d", n, maxFrame)
	}
	if len(rest) < frameHeader+n {
		return tear()
	}
	payload := rest[frameHeader : frameHeader+n]
	if crc32.Checksum(payload, castagnoli()) != binary.BigEndian.Uint32(h[4:8]) {
		if len(rest) == frameHeader+n {
			return tear()
		}
		return nil, errors.New("checksum mismatch")
	}
	r.off += frameHeader + n
	return payload, nil
}

func allZero(b []byte) bool {
	return len(bytes.Trim(b, "\x00")) == 0
}
