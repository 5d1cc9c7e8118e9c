package emulator_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyless-dev/keyless/internal/emulator"
	"github.com/keyless-dev/keyless/internal/testkit"
)

// journalEnv is an emulator over the test seed with its state in a new
// directory; the journal's records are found by frames.
func journalEnv(t *testing.T) (*env, string) {
	t.Helper()
	base := newEnv(t, setup{})
	path := filepath.Join(t.TempDir(), "state", "emulator.json")
	return base.withState(path), path
}

// frames returns the offsets of the journal's frames (the header first)
// and the offset of its end.
func frames(t *testing.T, data []byte) []int {
	t.Helper()
	var offs []int
	for off := 0; off < len(data); {
		offs = append(offs, off)
		if len(data)-off < 12 {
			t.Fatalf("journal ends in a frame header at %d", off)
		}
		off += 12 + int(binary.BigEndian.Uint32(data[off:]))
	}
	return append(offs, len(data))
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func writeStateFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestStateJournalEveryChange: each kind of change is appended to the
// journal (the snapshot is not rewritten) and is there after a restart:
// trust anchors, CRLs, profiles and their mappings, notification
// settings, roles and their policies, Roles Anywhere and IAM tags, and
// the deletes of each.
func TestStateJournalEveryChange(t *testing.T) {
	e, path := journalEnv(t)
	snapshot := readFile(t, path)
	bundle := strings.TrimSpace(readFileString(t, filepath.Join(e.dir, "bundle.pem")))
	roleARN := e.out.Roles["ci-deployer"]

	// Created, changed, then deleted: the deletes must be recorded too.
	gone := e.mustRA(201, "POST", "/trustanchors", createAnchorBody("gone", bundle))["trustAnchor"].(map[string]any)["trustAnchorId"].(string)
	kept := e.mustRA(201, "POST", "/trustanchors", createAnchorBody("kept", bundle))["trustAnchor"].(map[string]any)
	keptID, keptARN := kept["trustAnchorId"].(string), kept["trustAnchorArn"].(string)
	e.mustRA(200, "POST", "/trustanchor/"+keptID+"/disable", nil)
	e.mustRA(200, "PATCH", "/put-notifications-settings", map[string]any{"trustAnchorId": keptID,
		"notificationSettings": []map[string]any{{"enabled": false, "event": "CA_CERTIFICATE_EXPIRY"}}})
	e.mustRA(200, "DELETE", "/trustanchor/"+gone, nil)

	crlData := base64.StdEncoding.EncodeToString(e.root.CRL(t, big.NewInt(42)))
	crl := e.mustRA(201, "POST", "/crls", map[string]any{"name": "kept", "trustAnchorArn": keptARN, "crlData": crlData, "tags": tagList("c", "d")})["crl"].(map[string]any)
	e.mustRA(200, "PATCH", "/crl/"+crl["crlId"].(string), map[string]any{"name": "renamed"})
	goneCRL := e.mustRA(201, "POST", "/crls", map[string]any{"name": "gone", "trustAnchorArn": keptARN, "crlData": crlData})["crl"].(map[string]any)
	e.mustRA(200, "DELETE", "/crl/"+goneCRL["crlId"].(string), nil)

	p := e.createProfile(map[string]any{"name": "kept", "roleArns": []string{roleARN}, "tags": tagList("a", "b")})
	pid := p["profileId"].(string)
	e.mustRA(200, "PATCH", "/profile/"+pid, map[string]any{"durationSeconds": 1800})
	e.mustRA(200, "DELETE", "/profiles/"+pid+"/mappings?certificateField=x509SAN", nil)
	goneProfile := e.createProfile(map[string]any{"name": "gone", "roleArns": []string{roleARN}})
	e.mustRA(200, "DELETE", "/profile/"+goneProfile["profileId"].(string), nil)

	e.mustRA(201, "POST", "/TagResource", map[string]any{"resourceArn": keptARN, "tags": tagList("team", "ci", "drop", "me")})
	e.mustRA(200, "POST", "/UntagResource", map[string]any{"resourceArn": keptARN, "tagKeys": []string{"drop"}})
	// A new value for a key it has: as many tags as before.
	e.mustRA(201, "POST", "/TagResource", map[string]any{"resourceArn": keptARN, "tags": tagList("team", "ops")})
	e.mustRA(200, "POST", "/UntagResource", map[string]any{"resourceArn": p["profileArn"].(string), "tagKeys": []string{"a"}})

	e.createRole("kept", "Path", "/ci/", "Tags.member.1.Key", "team", "Tags.member.1.Value", "ci")
	e.iamOK(act("PutRolePolicy", "RoleName", "kept", "PolicyName", "inline",
		"PolicyDocument", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}`), nil)
	e.iamOK(act("UpdateRoleDescription", "RoleName", "kept", "Description", "changed"), nil)
	e.iamOK(act("TagRole", "RoleName", "kept", "Tags.member.1.Key", "more", "Tags.member.1.Value", "tags"), nil)
	e.createRole("gone")
	e.iamOK(act("DeleteRole", "RoleName", "gone"), nil)

	if got := readFile(t, path); !bytes.Equal(got, snapshot) {
		t.Fatalf("the snapshot was rewritten by a change; want every change in the journal only")
	}
	if n := len(frames(t, readFile(t, path+".journal"))) - 2; n < 20 {
		t.Fatalf("the journal holds %d records, want one per change", n)
	}
	before := emulator.StateDump(e.emu)
	for _, want := range []string{`"kept"`, `"renamed"`, `"changed"`, `"more"`, `"inline"`, `"ops"`} {
		if !strings.Contains(before, want) {
			t.Fatalf("the state lacks %s: the test made no such change", want)
		}
	}
	e.srv.Close()
	again := e.withState(path)
	if diff := cmp.Diff(before, emulator.StateDump(again.emu)); diff != "" {
		t.Errorf("the state after a restart from the journal differs (-before +after):\n%s", diff)
	}
	// The restart folded the journal into a new snapshot.
	if n := len(frames(t, readFile(t, path+".journal"))) - 2; n != 0 {
		t.Errorf("after a restart the journal holds %d records, want 0 (folded into the snapshot)", n)
	}
	again.srv.Close()
	if diff := cmp.Diff(before, emulator.StateDump(e.withState(path).emu)); diff != "" {
		t.Errorf("the state after a second restart differs (-before +after):\n%s", diff)
	}
}

func readFileString(t *testing.T, path string) string { return string(readFile(t, path)) }

// twoChanges makes two changes after the state at path: anchors "first"
// and "second", one record each; it returns the journal's bytes and
// frame offsets.
func twoChanges(t *testing.T) (e *env, path string, journal []byte, offs []int) {
	t.Helper()
	e, path = journalEnv(t)
	bundle := readFileString(t, filepath.Join(e.dir, "bundle.pem"))
	e.mustRA(201, "POST", "/trustanchors", createAnchorBody("first", bundle))
	e.mustRA(201, "POST", "/trustanchors", createAnchorBody("second", bundle))
	e.srv.Close()
	journal = readFile(t, path+".journal")
	offs = frames(t, journal)
	if len(offs) != 4 {
		t.Fatalf("journal frames at %v, want a header and two records", offs)
	}
	return e, path, journal, offs
}

// TestStateJournalTornLastRecordDropped: a crash in the middle of an
// append leaves part of the last record (or zeros where the file grew
// before its data reached the disk); that change was never answered, so
// it is dropped, with a log line, and every change before it loads.
func TestStateJournalTornLastRecordDropped(t *testing.T) {
	e, path, journal, offs := twoChanges(t)
	last := offs[2]
	zeros := func(n int) []byte { return make([]byte, n) }
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"header cut", journal[:last+5]},
		{"payload cut", journal[:last+12+10]},
		{"last byte missing", journal[:len(journal)-1]},
		{"zeros in place of the record", append(slices.Clone(journal[:last]), zeros(len(journal)-last)...)},
		{"zeros at the end of the payload", append(slices.Clone(journal[:len(journal)-8]), zeros(8)...)},
		{"header, then zeros", append(slices.Clone(journal[:last+12]), zeros(len(journal)-last-12)...)},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "emulator.json")
			writeStateFile(t, p, readFile(t, path))
			writeStateFile(t, p+".journal", c.data)
			logs := &testkit.Buffer{}
			r := e.withLogs(logs).withState(p)
			out := r.emu.Outputs("")
			if out.TrustAnchors["first"] == "" || out.TrustAnchors["second"] != "" {
				t.Errorf("anchors %v; want first, not second (its record is torn)", out.TrustAnchors)
			}
			if want := fmt.Sprintf("offset=%d", last); !strings.Contains(logs.String(), "dropped the torn last record") || !strings.Contains(logs.String(), want) {
				t.Errorf("no log line says the torn record at %d was dropped:\n%s", last, logs.String())
			}
			// Folded into a new snapshot: an append never follows a torn record.
			if n := len(frames(t, readFile(t, p+".journal"))); n != 2 {
				t.Errorf("after loading, the journal has %d frames, want only its header", n-1)
			}
		})
	}
}

func (e *env) withLogs(logs *testkit.Buffer) *env {
	c := *e
	c.logs = logs
	return &c
}

// TestStateJournalCorruptRecordRefused: a bad record that is not the
// last is not a torn append but a damaged file: the start is refused,
// naming the journal and the record's offset, and nothing is rewritten.
func TestStateJournalCorruptRecordRefused(t *testing.T) {
	e, path, journal, offs := twoChanges(t)
	first := offs[1]
	flip := func(at int) []byte {
		b := slices.Clone(journal)
		b[at] ^= 0x20
		return b
	}
	for _, c := range []struct {
		name string
		data []byte
		at   int
		want string
	}{
		{"payload byte", flip(first + 12 + 20), first, "checksum mismatch"},
		{"length", flip(first + 3), first, "corrupt frame header"},
		{"header checksum", flip(first + 10), first, "corrupt frame header"},
		// A whole record copied: its number gives it away.
		{"record repeated", append(slices.Clone(journal), journal[first:offs[2]]...), len(journal), "number 1, want 3"},
		{"zeros in the middle", append(append(slices.Clone(journal[:first]), make([]byte, offs[2]-first)...), journal[offs[2]:]...), first, "corrupt frame header"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "emulator.json")
			snap := readFile(t, path)
			writeStateFile(t, p, snap)
			writeStateFile(t, p+".journal", c.data)
			_, err := e.tryWithState(p)
			var se *emulator.StateFileError
			want := fmt.Sprintf("record at offset %d: %s", c.at, c.want)
			if !errors.As(err, &se) || !se.Refused || se.Path != p+".journal" || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), p+".journal") {
				t.Fatalf("New: %v; want a refused StateFileError for the journal saying %q", err, want)
			}
			if !bytes.Equal(readFile(t, p+".journal"), c.data) || !bytes.Equal(readFile(t, p), snap) {
				t.Errorf("the refused files were changed")
			}
		})
	}
}

func (e *env) tryWithState(path string) (*emulator.Emulator, error) {
	e.t.Helper()
	seed, err := emulator.LoadSeed(filepath.Join(e.dir, "emulator.yaml"))
	if err != nil {
		e.t.Fatal(err)
	}
	return emulator.New(emulator.Config{Seed: seed, Now: e.now, StatePath: path})
}

// TestStateJournalRefusedAtStart: a journal that is not one, of another
// format, for another snapshot, or that others may write, stops the
// start, naming the journal.
func TestStateJournalRefusedAtStart(t *testing.T) {
	e, path, journal, offs := twoChanges(t)
	header := journal[:offs[1]]
	reframe := func(from, to string) []byte {
		payload := strings.Replace(string(header[12:]), from, to, 1)
		return append(frame([]byte(payload)), journal[offs[1]:]...)
	}
	for _, c := range []struct {
		name string
		data []byte
		mode os.FileMode
		want string
	}{
		{"empty", nil, 0o600, "not a journal"},
		{"not framed", []byte(`{"format":"keyless-emulator-journal/1"}`), 0o600, "not a journal"},
		{"other format", reframe("keyless-emulator-journal/1", "keyless-emulator-journal/9"), 0o600, `format "keyless-emulator-journal/9"`},
		{"newer generation", reframe(`"generation":1`, `"generation":2`), 0o600, "it is for generation 2"},
		{"another snapshot", reframe(`"snapshot":"`, `"snapshot":"x`), 0o600, "belongs to another state file"},
		{"writable by others", journal, 0o666, "writable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "emulator.json")
			writeStateFile(t, p, readFile(t, path))
			writeStateFile(t, p+".journal", c.data)
			if err := os.Chmod(p+".journal", c.mode); err != nil {
				t.Fatal(err)
			}
			_, err := e.tryWithState(p)
			var se *emulator.StateFileError
			if !errors.As(err, &se) || se.Path != p+".journal" || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p+".journal") {
				t.Fatalf("New: %v; want a StateFileError for the journal saying %q", err, c.want)
			}
			if !bytes.Equal(readFile(t, p+".journal"), c.data) {
				t.Errorf("the refused journal was changed")
			}
		})
	}
}

// frame frames payload as the journal does.
func frame(payload []byte) []byte {
	h := make([]byte, 12)
	binary.BigEndian.PutUint32(h[0:], uint32(len(payload)))
	binary.BigEndian.PutUint32(h[4:], crc32c(payload))
	binary.BigEndian.PutUint32(h[8:], crc32c(h[:8]))
	return append(h, payload...)
}

// TestStateCompactionCrashPoints writes the files as a crash at each
// step of a compaction leaves them and loads the right state from each:
// before the snapshot's rename (a temporary file, the old snapshot and
// journal), after it (the new snapshot, the old journal: ignored, or it
// would put back what was deleted since), during the journal's write (the
// same, with a temporary journal), and after (both new).
func TestStateCompactionCrashPoints(t *testing.T) {
	e, path := journalEnv(t)
	bundle := readFileString(t, filepath.Join(e.dir, "bundle.pem"))
	id := e.mustRA(201, "POST", "/trustanchors", createAnchorBody("deleted-later", bundle))["trustAnchor"].(map[string]any)["trustAnchorId"].(string)
	oldSnap, oldJournal := readFile(t, path), readFile(t, path+".journal")
	withAnchor := emulator.StateDump(e.emu)
	e.mustRA(200, "DELETE", "/trustanchor/"+id, nil)
	if err := emulator.CompactState(e.emu); err != nil {
		t.Fatal(err)
	}
	newSnap, newJournal := readFile(t, path), readFile(t, path+".journal")
	without := emulator.StateDump(e.emu)
	e.srv.Close()

	for _, c := range []struct {
		name                    string
		snap, journal, tempSnap []byte
		tempJournal             []byte
		want                    string
	}{
		{name: "writing the snapshot", snap: oldSnap, journal: oldJournal, tempSnap: newSnap[:len(newSnap)/2], want: withAnchor},
		{name: "snapshot written, not renamed", snap: oldSnap, journal: oldJournal, tempSnap: newSnap, want: withAnchor},
		{name: "snapshot renamed", snap: newSnap, journal: oldJournal, want: without},
		{name: "writing the journal", snap: newSnap, journal: oldJournal, tempJournal: newJournal[:5], want: without},
		{name: "journal renamed", snap: newSnap, journal: newJournal, want: without},
		// Loaded without a compaction: the temporary files still go.
		{name: "journal renamed, temporary files of an earlier crash", snap: newSnap, journal: newJournal, tempSnap: oldSnap, tempJournal: oldJournal, want: without},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "emulator.json")
			writeStateFile(t, p, c.snap)
			writeStateFile(t, p+".journal", c.journal)
			if c.tempSnap != nil {
				writeStateFile(t, filepath.Join(dir, ".tmp-emulator.json-123"), c.tempSnap)
			}
			if c.tempJournal != nil {
				writeStateFile(t, filepath.Join(dir, ".tmp-emulator.json.journal-456"), c.tempJournal)
			}
			r := e.withState(p)
			if diff := cmp.Diff(c.want, emulator.StateDump(r.emu)); diff != "" {
				t.Errorf("loaded state (-want +got):\n%s", diff)
			}
			if got := testkit.DirNames(t, dir); !slices.Equal(got, []string{"emulator.json", "emulator.json.journal"}) {
				t.Errorf("after loading the directory holds %v, want the snapshot and its journal only", got)
			}
		})
	}
}

// TestStateJournalOlderGenerationIgnored: the journal of an earlier
// generation was folded into the snapshot; applied again, it would put
// back an anchor deleted since.
func TestStateJournalOlderGenerationIgnored(t *testing.T) {
	e, path := journalEnv(t)
	bundle := readFileString(t, filepath.Join(e.dir, "bundle.pem"))
	id := e.mustRA(201, "POST", "/trustanchors", createAnchorBody("deleted-later", bundle))["trustAnchor"].(map[string]any)["trustAnchorId"].(string)
	old := readFile(t, path+".journal")
	e.srv.Close()
	r := e.withState(path) // folds it: generation 2
	r.mustRA(200, "DELETE", "/trustanchor/"+id, nil)
	r.srv.Close()
	r = e.withState(path) // generation 3
	r.srv.Close()
	writeStateFile(t, path+".journal", old)
	logs := &testkit.Buffer{}
	r = e.withLogs(logs).withState(path)
	if got := r.emu.Outputs("").TrustAnchors; got["deleted-later"] != "" {
		t.Errorf("anchors %v: the older journal was applied", got)
	}
	if !strings.Contains(logs.String(), "ignored a journal already folded into the state file") {
		t.Errorf("no log line says the older journal was ignored:\n%s", logs.String())
	}
}

// TestStateJournalSyncedBeforeAnswer: when a change is answered, its
// record was made durable (the sync ran after the record was written in
// full), once per change.
func TestStateJournalSyncedBeforeAnswer(t *testing.T) {
	e, path := journalEnv(t)
	bundle := readFileString(t, filepath.Join(e.dir, "bundle.pem"))
	var synced []int64
	emulator.SetStateSync(e.emu, func(f *os.File) error {
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		synced = append(synced, fi.Size())
		return f.Sync()
	})
	for i := range 3 {
		e.mustRA(201, "POST", "/trustanchors", createAnchorBody(fmt.Sprintf("a%d", i), bundle))
		size := int64(len(readFile(t, path+".journal")))
		if len(synced) != i+1 || synced[i] != size {
			t.Fatalf("after change %d answered: syncs at journal sizes %v, want %d of them, the last at %d", i+1, synced, i+1, size)
		}
	}
}

// TestStateJournalCompacts: once the journal outgrows the snapshot (and
// the minimum), the change that made it so writes a new snapshot of a
// later generation and an empty journal, and the state loads the same.
func TestStateJournalCompacts(t *testing.T) {
	e, path := journalEnv(t)
	emulator.SetStateCompactMin(e.emu, 0)
	bundle := readFileString(t, filepath.Join(e.dir, "bundle.pem"))
	gen := func() string {
		var f struct{ Generation int }
		if err := json.Unmarshal(readFile(t, path), &f); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(f.Generation)
	}
	start := gen()
	compacted := false
	for i := 0; i < 40 && !compacted; i++ {
		e.mustRA(201, "POST", "/trustanchors", createAnchorBody(fmt.Sprintf("a%d", i), bundle))
		compacted = gen() != start
	}
	if !compacted {
		t.Fatalf("40 changes, the journal now %d bytes and the snapshot %d: no compaction", len(readFile(t, path+".journal")), len(readFile(t, path)))
	}
	if n := len(frames(t, readFile(t, path+".journal"))); n != 2 {
		t.Errorf("after a compaction the journal has %d frames, want its header only", n-1)
	}
	e.mustRA(201, "POST", "/trustanchors", createAnchorBody("after", bundle))
	before := emulator.StateDump(e.emu)
	e.srv.Close()
	if diff := cmp.Diff(before, emulator.StateDump(e.withState(path).emu)); diff != "" {
		t.Errorf("after a restart (-before +after):\n%s", diff)
	}
}

// TestStateFormat1Loads: a state file written before the journal
// (format 1, by the code of commit c662ab8) loads, and is rewritten as
// format 2 with a journal.
func TestStateFormat1Loads(t *testing.T) {
	dir := t.TempDir()
	writeBundle(t, dir)
	path := filepath.Join(dir, "state", "emulator.json")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	writeStateFile(t, path, readFile(t, "testdata/state-v1.json"))
	clock := testkit.NewClock(time.Now().Truncate(time.Second))
	e := stateEnv(t, dir, operatorsSeed, path, clock)
	out := e.emu.Outputs("")
	if out.TrustAnchors["v1-anchor"] == "" || out.Roles["v1-role"] == "" || out.Profiles["v1-profile"] == "" {
		t.Fatalf("resources of the format 1 file: %+v", out)
	}
	before := emulator.StateDump(e.emu)
	for _, want := range []string{`"v1-crl"`, `"team"`, `"k"`} {
		if !strings.Contains(before, want) {
			t.Errorf("the loaded state lacks %s:\n%s", want, before)
		}
	}
	if !strings.Contains(readFileString(t, path), `"keyless-emulator-state/2"`) {
		t.Errorf("the format 1 file was not rewritten as format 2")
	}
	e.srv.Close()
	again := stateEnv(t, dir, operatorsSeed, path, clock)
	if diff := cmp.Diff(before, emulator.StateDump(again.emu)); diff != "" {
		t.Errorf("after a restart (-before +after):\n%s", diff)
	}
}

// TestStateJournalWithoutSnapshot: a journal whose snapshot was moved
// away is not applied to the state made from the seed; it is replaced.
func TestStateJournalWithoutSnapshot(t *testing.T) {
	e, path, _, _ := twoChanges(t)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	r := e.withState(path)
	if got := r.emu.Outputs("").TrustAnchors; got["first"] != "" || got["second"] != "" {
		t.Errorf("anchors %v: the journal of the removed state was applied", got)
	}
	if n := len(frames(t, readFile(t, path+".journal"))); n != 2 {
		t.Errorf("the new journal has %d frames, want its header only", n-1)
	}
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }

// TestStateSnapshotWithoutJournalRefused: when the change after a failed
// append must write the whole state and only its journal fails, the
// change is refused and the snapshot holds the previous state again.
func TestStateSnapshotWithoutJournalRefused(t *testing.T) {
	e, path := journalEnv(t)
	bundle := readFileString(t, filepath.Join(e.dir, "bundle.pem"))
	block := func(p string) {
		t.Helper()
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		// A non-empty directory in a file's place: a rename over it fails.
		if err := os.MkdirAll(filepath.Join(p, "blocker"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	unblock := func(p string) {
		t.Helper()
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
	// An append fails and so does rewriting the previous state: the next
	// change must write the whole state.
	emulator.SetStateSync(e.emu, func(*os.File) error { return errors.New("injected fsync failure") })
	snapshot := readFile(t, path)
	block(path)
	e.mustRA(500, "POST", "/trustanchors", createAnchorBody("refused", bundle))
	emulator.SetStateSync(e.emu, func(f *os.File) error { return f.Sync() })
	unblock(path)
	writeStateFile(t, path, snapshot)
	block(path + ".journal")
	e.mustRA(500, "POST", "/trustanchors", createAnchorBody("refused-too", bundle))
	unblock(path + ".journal")
	e.srv.Close()
	if got := e.withState(path).emu.Outputs("").TrustAnchors; got["refused"] != "" || got["refused-too"] != "" {
		t.Errorf("anchors after a restart %v: a refused change is in the snapshot", got)
	}
}
