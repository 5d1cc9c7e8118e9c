package emulator_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNotificationSettings(t *testing.T) {
	e := newEnv(t, setup{})
	id := "3f7c1a0e-0000-4000-8000-000000000001" // gitlab-runner-ca
	defaults := []any{
		map[string]any{"enabled": true, "event": "CA_CERTIFICATE_EXPIRY", "threshold": float64(45), "channel": "ALL", "configuredBy": "rolesanywhere.amazonaws.com"},
		map[string]any{"enabled": true, "event": "END_ENTITY_CERTIFICATE_EXPIRY", "threshold": float64(45), "channel": "ALL", "configuredBy": "rolesanywhere.amazonaws.com"},
	}
	got := e.mustRA(200, "GET", "/trustanchor/"+id, nil)["trustAnchor"].(map[string]any)["notificationSettings"]
	if diff := cmp.Diff(defaults, got); diff != "" {
		t.Errorf("defaults:\n%s", diff)
	}
	put := e.mustRA(200, "PATCH", "/put-notifications-settings", map[string]any{"trustAnchorId": id,
		"notificationSettings": []map[string]any{{"enabled": false, "event": "END_ENTITY_CERTIFICATE_EXPIRY", "threshold": 10}}})
	want := []any{defaults[0], map[string]any{"enabled": false, "event": "END_ENTITY_CERTIFICATE_EXPIRY", "threshold": float64(10), "channel": "ALL", "configuredBy": "111122223333"}}
	if diff := cmp.Diff(want, put["trustAnchor"].(map[string]any)["notificationSettings"]); diff != "" {
		t.Errorf("after PutNotificationSettings:\n%s", diff)
	}
	got = e.mustRA(200, "GET", "/trustanchor/"+id, nil)["trustAnchor"].(map[string]any)["notificationSettings"]
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetTrustAnchor after put:\n%s", diff)
	}
	reset := e.mustRA(200, "PATCH", "/reset-notifications-settings", map[string]any{"trustAnchorId": id,
		"notificationSettingKeys": []map[string]any{{"event": "END_ENTITY_CERTIFICATE_EXPIRY"}}})
	if diff := cmp.Diff(defaults, reset["trustAnchor"].(map[string]any)["notificationSettings"]); diff != "" {
		t.Errorf("after ResetNotificationSettings:\n%s", diff)
	}

	for _, c := range []struct {
		name, path string
		body       any
		status     int
		code, want string
	}{
		{"put: unknown anchor", "/put-notifications-settings", map[string]any{"trustAnchorId": "00000000-0000-4000-8000-000000000000", "notificationSettings": []any{}}, 404, "ResourceNotFoundException", "no trust anchor with id"},
		{"put: anchor missing", "/put-notifications-settings", map[string]any{"notificationSettings": []any{}}, 400, "ValidationException", "'trustAnchorId'"},
		{"put: settings missing", "/put-notifications-settings", map[string]any{"trustAnchorId": id}, 400, "ValidationException", "'notificationSettings'"},
		{"put: unknown event", "/put-notifications-settings", map[string]any{"trustAnchorId": id, "notificationSettings": []map[string]any{{"enabled": true, "event": "X"}}}, 400, "ValidationException", "notification event"},
		{"put: threshold 361", "/put-notifications-settings", map[string]any{"trustAnchorId": id, "notificationSettings": []map[string]any{{"enabled": true, "event": "CA_CERTIFICATE_EXPIRY", "threshold": 361}}}, 400, "ValidationException", "threshold"},
		{"reset: keys missing", "/reset-notifications-settings", map[string]any{"trustAnchorId": id}, 400, "ValidationException", "'notificationSettingKeys'"},
		{"reset: unknown event", "/reset-notifications-settings", map[string]any{"trustAnchorId": id, "notificationSettingKeys": []map[string]any{{"event": "X"}}}, 400, "ValidationException", "no notification setting"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, out := e.ra(operator, "PATCH", c.path, c.body)
			msg, _ := out["message"].(string)
			if status != c.status || out["__type"] != c.code || !strings.Contains(msg, c.want) {
				t.Errorf("%d %v, want %d %s containing %q", status, out, c.status, c.code, c.want)
			}
		})
	}
}
