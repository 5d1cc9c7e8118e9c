package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"testing"
)

// decodeSessionBodyBefore is decodeSessionBody before its json.Unmarshal
// fast path, which must give the same answers.
func decodeSessionBodyBefore(body []byte) (*sessionBody, *apiError) {
	serialization := func(format string, args ...any) *apiError {
		return &apiError{status: http.StatusBadRequest, code: "SerializationException", message: "The request body is not valid JSON", rule: fmt.Sprintf(format, args...)}
	}
	var b sessionBody
	if len(bytes.TrimSpace(body)) == 0 {
		return &b, nil
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil {
		return nil, serialization("%s", truncate(err.Error()))
	}
	if dec.More() {
		return nil, serialization("data after the JSON object")
	}
	for _, f := range []struct {
		name string
		dst  any
	}{
		{"durationSeconds", &b.DurationSeconds}, {"roleSessionName", &b.RoleSessionName}, {"sessionName", &b.SessionName},
		{"instanceProperties", &b.InstanceProperties}, {"profileArn", &b.ProfileArn}, {"roleArn", &b.RoleArn}, {"trustAnchorArn", &b.TrustAnchorArn},
	} {
		raw, ok := fields[f.name]
		if !ok {
			continue
		}
		if err := json.Unmarshal(raw, f.dst); err != nil {
			return nil, serialization("%s: %s", f.name, truncate(err.Error()))
		}
	}
	return &b, nil
}

func TestDecodeSessionBodyFastPath(t *testing.T) {
	for _, body := range []string{
		`{"durationSeconds":3600}`, ` {"durationSeconds":3600} `, `{"a":1} }`, `{"a":1} ]`, `{} {}`, `{}x`, `null`, `[]`, `1`, "",
		`{"durationSeconds":"x"}`, `{"durationSeconds":1,"durationSeconds":2}`, `{"roleSessionName":"\ud800"}`, `{`, `{"a":}`,
		"{\"a\":1}\n", `{"instanceProperties":{"k":"v"}}`, `{"a":[1,2,{"b":null}]} `, `{"DurationSeconds":5}`, `{"profileArn":1}`,
	} {
		got, fail := decodeSessionBody([]byte(body))
		want, wantFail := decodeSessionBodyBefore([]byte(body))
		if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(fail, wantFail) {
			t.Errorf("%q: %+v %+v; before %+v %+v", body, got, fail, want, wantFail)
		}
	}
}
