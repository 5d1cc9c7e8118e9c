package emulator

import (
	"net/http"
	"slices"
)

// A trust anchor's notification settings: PutNotificationSettings and
// ResetNotificationSettings. The emulator sends no notifications; it keeps
// the settings so that GetTrustAnchor (and Terraform) read back what was
// put.

func registerRANotifications() {
	registerRA(http.MethodPatch, "/put-notifications-settings", "PutNotificationSettings", (*Emulator).putNotificationSettings)
	registerRA(http.MethodPatch, "/reset-notifications-settings", "ResetNotificationSettings", (*Emulator).resetNotificationSettings)
}

// changeAnchorSettings replaces the named trust anchor with a copy whose
// notification settings fn returns.
func (e *Emulator) changeAnchorSettings(id *string, fn func(current []NotificationSetting) ([]NotificationSetting, *apiError)) (int, any, *apiError) {
	if id == nil {
		return 0, nil, validationError("1 validation error detected: Value null at 'trustAnchorId' failed to satisfy constraint: Member must not be null")
	}
	return e.changeAnchor(*id, func(n *TrustAnchor) *apiError {
		settings, fail := fn(n.NotificationSettings)
		if fail != nil {
			return fail
		}
		n.NotificationSettings = settings
		return nil
	})
}

func (e *Emulator) putNotificationSettings(c *raCall) (int, any, *apiError) {
	var in struct {
		TrustAnchorID        *string               `json:"trustAnchorId"`
		NotificationSettings []NotificationSetting `json:"notificationSettings"`
	}
	if fail := decodeJSON(c.body, &in); fail != nil {
		return 0, nil, fail
	}
	if in.NotificationSettings == nil {
		return 0, nil, validationError("1 validation error detected: Value null at 'notificationSettings' failed to satisfy constraint: Member must not be null")
	}
	return e.changeAnchorSettings(in.TrustAnchorID, func(current []NotificationSetting) ([]NotificationSetting, *apiError) {
		return notificationSettings(current, in.NotificationSettings, e.st.account)
	})
}

func (e *Emulator) resetNotificationSettings(c *raCall) (int, any, *apiError) {
	var in struct {
		TrustAnchorID           *string `json:"trustAnchorId"`
		NotificationSettingKeys []struct {
			Event   string `json:"event"`
			Channel string `json:"channel"`
		} `json:"notificationSettingKeys"`
	}
	if fail := decodeJSON(c.body, &in); fail != nil {
		return 0, nil, fail
	}
	if in.NotificationSettingKeys == nil {
		return 0, nil, validationError("1 validation error detected: Value null at 'notificationSettingKeys' failed to satisfy constraint: Member must not be null")
	}
	return e.changeAnchorSettings(in.TrustAnchorID, func(current []NotificationSetting) ([]NotificationSetting, *apiError) {
		if current == nil {
			current = defaultNotificationSettings()
		}
		out := slices.Clone(current)
		defaults := defaultNotificationSettings()
		for _, k := range in.NotificationSettingKeys {
			if k.Channel == "" {
				k.Channel = "ALL"
			}
			found := false
			for i := range out {
				if out[i].Event == k.Event && out[i].Channel == k.Channel {
					for _, d := range defaults {
						if d.Event == k.Event && d.Channel == k.Channel {
							out[i], found = d, true
						}
					}
				}
			}
			if !found {
				return nil, validationError("1 validation error detected: no notification setting for event '%s' on channel '%s' (events: CA_CERTIFICATE_EXPIRY, END_ENTITY_CERTIFICATE_EXPIRY; channel: ALL)", truncate(k.Event), truncate(k.Channel))
			}
		}
		return out, nil
	})
}
