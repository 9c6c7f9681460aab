package web

import (
	"context"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
)

// Reloader re-reads the configuration file and applies what can change
// while the server runs.
type Reloader interface {
	Reload(ctx context.Context) (ReloadResult, error)
}

// ErrInvalidConfig marks a reload refused because the file is invalid; the
// running configuration stays.
var ErrInvalidConfig = errors.New("invalid configuration")

// ReloadResult says what a reload applied.
type ReloadResult struct {
	Applied       []string `json:"applied" doc:"Parts of the file applied: users, trunks, webhooks."`
	RestartNeeded []string `json:"restart_needed" doc:"Keys that changed in the file but apply only at the next start."`
}

type reloadOutput struct {
	Body ReloadResult
}

func (s *Server) registerReload(api huma.API, r Reloader) {
	o := op("reload", http.MethodPost, "/api/v1/reload", tagServer, "Reload the configuration file", http.StatusUnprocessableEntity)
	o.Description = "Reads the configuration file again and applies users, trunks and webhooks without dropping calls or registrations (the same as SIGHUP). " +
		"An invalid file is refused with 422 and the errors in `detail`; the running configuration stays."
	huma.Register(api, o, func(ctx context.Context, _ *struct{}) (*reloadOutput, error) {
		res, err := r.Reload(ctx)
		if errors.Is(err, ErrInvalidConfig) {
			return nil, huma.Error422UnprocessableEntity(err.Error())
		}
		if err != nil {
			return nil, s.problem(ctx, "reload", err)
		}
		if res.Applied == nil {
			res.Applied = []string{}
		}
		if res.RestartNeeded == nil {
			res.RestartNeeded = []string{}
		}
		return &reloadOutput{Body: res}, nil
	})
}
