package web

import (
	"context"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/switchboard/switchboard/internal/jsontime"
)

// Errors of Originate, each mapping to one HTTP status.
var (
	// ErrConflict reports a request the current state does not allow,
	// such as calling from a user with no registered device (409).
	ErrConflict = errors.New("web: conflict")
	// ErrNoRoute reports a number that is neither a user nor reachable
	// through a trunk (404).
	ErrNoRoute = errors.New("web: no route")
	// ErrUnavailable reports a server that does not take the request now,
	// such as one that is stopping (503).
	ErrUnavailable = errors.New("web: unavailable")
)

// OriginateRequest is the body of a click-to-call request.
type OriginateRequest struct {
	From string `json:"from" pattern:"^[A-Za-z0-9._+-]{1,64}$" doc:"The user whose registered devices ring first (a user name: 1 to 64 letters, digits or . _ + -)."`
	To   string `json:"to" pattern:"^[A-Za-z0-9._+*#-]{1,64}$" doc:"The user or number called once a device of from answers (1 to 64 letters, digits or . _ + * # -)."`
}

// Originate is a click-to-call in progress.
type Originate struct {
	ID        string          `json:"id"`
	From      string          `json:"from"`
	To        string          `json:"to"`
	State     string          `json:"state" enum:"ringing,calling,answered" doc:"ringing: the devices of from ring; calling: from answered, to is being called; answered: both are connected."`
	CallID    string          `json:"call_id,omitempty" doc:"The call from → to in /api/v1/calls, once it is placed."`
	StartedAt jsontime.Millis `json:"started_at"`
}

// Originator places click-to-calls.
type Originator interface {
	// Originate rings the devices of from and, when one answers, calls to
	// and connects them. It returns at once. An unknown from is
	// ErrNotFound, a from with no registered device ErrConflict.
	Originate(ctx context.Context, from, to string) (Originate, error)
}

type originateInput struct {
	Body OriginateRequest
}

type originateOutput struct {
	Location string `header:"Location"`
	Body     Originate
}

func (s *Server) registerOriginate(api huma.API) {
	o := op("originate-call", http.MethodPost, "/api/v1/calls", tagCalls, "Place a call (click-to-call)",
		http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusServiceUnavailable)
	o.DefaultStatus = http.StatusAccepted
	o.Description = "Rings every registered device of `from`. When one answers, calls `to` from it, as if its user had dialled, " +
		"and connects the two. Answers at once with 202. The `id` names the call throughout: GET /api/v1/calls/{id} shows it (ringing while the devices of `from` ring; DELETE cancels it), " +
		"its events and record (GET /api/v1/records/{id}) are those of any call. When no device of `from` answers, that record " +
		"(result no_answer, busy, declined, cancelled…) and a call.ended event say how it ended. 404: `from` is not a user, or `to` is neither a user nor a number a trunk takes from `from`; 409: `from` has no registered device."
	huma.Register(api, o, func(ctx context.Context, in *originateInput) (*originateOutput, error) {
		if s.orig == nil {
			return nil, huma.Error503ServiceUnavailable("click-to-call is not available")
		}
		res, err := s.orig.Originate(ctx, in.Body.From, in.Body.To)
		switch {
		case errors.Is(err, ErrNoRoute):
			return nil, huma.Error404NotFound("no user or trunk route for " + quote(in.Body.To))
		case errors.Is(err, ErrNotFound):
			return nil, huma.Error404NotFound("user " + quote(in.Body.From) + " not found")
		case errors.Is(err, ErrConflict):
			return nil, huma.Error409Conflict("user " + quote(in.Body.From) + " has no registered device to ring")
		case errors.Is(err, ErrUnavailable):
			return nil, huma.Error503ServiceUnavailable("the server does not take calls now")
		case err != nil:
			return nil, s.problem(ctx, "click-to-call", err)
		}
		s.log.Info("click-to-call requested", "from", in.Body.From, "to", in.Body.To, "originate_id", res.ID)
		return &originateOutput{Location: "/api/v1/calls/" + res.ID, Body: res}, nil
	})
}
