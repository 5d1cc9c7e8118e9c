package emulator

import (
	"encoding/json"
	"os"
)

// SetStateSync replaces how e makes an appended journal record durable,
// so tests see when it is called, or make it fail.
func SetStateSync(e *Emulator, sync func(*os.File) error) { e.st.journal.sync = sync }

// SetStateCompactMin sets the journal size below which e never compacts.
func SetStateCompactMin(e *Emulator, n int64) { e.st.journal.compactMin = n }

// CompactState writes e's current state as a new snapshot and an empty
// journal, as a compaction does.
func CompactState(e *Emulator) error {
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	return e.st.journal.compact(e.st.snapshot())
}

// StateDump is everything the state file records of e's current state,
// as JSON, for comparing states.
func StateDump(e *Emulator) string {
	data, err := json.MarshalIndent(e.encodeState(e.st.snapshot()), "", " ")
	if err != nil {
		panic(err)
	}
	return string(data)
}
