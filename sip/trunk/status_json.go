package trunk

import (
	"encoding/json"

	"github.com/switchboard/switchboard/internal/jsontime"
)

// MarshalJSON writes s as the data of the trunk.up and trunk.down events:
// its times to the millisecond, with three fractional digits (jsontime),
// like every other time in an event.
func (s Status) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Name            string          `json:"name"`
		Address         string          `json:"address"`
		Transport       string          `json:"transport"`
		Register        bool            `json:"register"`
		State           State           `json:"state"`
		Registered      bool            `json:"registered"`
		LastError       string          `json:"last_error,omitempty"`
		LastErrorAt     jsontime.Millis `json:"last_error_at,omitzero"`
		LastSuccessAt   jsontime.Millis `json:"last_success_at,omitzero"`
		RegisteredUntil jsontime.Millis `json:"registered_until,omitzero"`
	}{s.Name, s.Address, s.Transport, s.Register, s.State, s.Registered, s.LastError,
		jsontime.Millis(s.LastErrorAt), jsontime.Millis(s.LastSuccessAt), jsontime.Millis(s.RegisteredUntil)})
}
