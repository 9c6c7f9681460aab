package web

import (
	"context"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
)

type callPath struct {
	ID string `path:"id" doc:"Call ID."`
}

type callOutput struct {
	Body Call
}

type callListOutput struct {
	Body Page[Call]
}

// callKey orders calls oldest first, ties by ID, as a string that sorts
// the same way.
func callKey(c Call) string {
	return fmt.Sprintf("%020d|%s", c.StartedAt.Time().UnixNano(), c.ID)
}

func (s *Server) registerCalls(api huma.API) {
	huma.Register(api, op("list-calls", http.MethodGet, "/api/v1/calls", tagCalls, "List calls in progress", http.StatusUnprocessableEntity),
		func(ctx context.Context, in *PageParams) (*callListOutput, error) {
			after, err := in.after()
			if err != nil {
				return nil, err
			}
			calls, err := s.svc.Calls(ctx)
			if err != nil {
				return nil, s.problem(ctx, "calls", err)
			}
			for i := range calls {
				calls[i] = withLegs(calls[i])
			}
			return &callListOutput{Body: pageOf(calls, callKey, in.Limit, after)}, nil
		})

	huma.Register(api, op("get-call", http.MethodGet, "/api/v1/calls/{id}", tagCalls, "Get a call in progress", http.StatusNotFound),
		func(ctx context.Context, in *callPath) (*callOutput, error) {
			c, err := s.svc.Call(ctx, in.ID)
			if err != nil {
				return nil, s.problem(ctx, "call "+quote(in.ID), err)
			}
			return &callOutput{Body: withLegs(c)}, nil
		})

	hangup := op("hangup-call", http.MethodDelete, "/api/v1/calls/{id}", tagCalls, "Hang up a call in progress", http.StatusNotFound)
	hangup.DefaultStatus = http.StatusNoContent
	hangup.Description = "Ends the call: BYE to both sides of an answered call, a final response to a caller still waiting. Its record says hangup_by system."
	huma.Register(api, hangup,
		func(ctx context.Context, in *callPath) (*struct{}, error) {
			if err := s.svc.Hangup(ctx, in.ID); err != nil {
				return nil, s.problem(ctx, "call "+quote(in.ID), err)
			}
			s.log.Info("call hung up by operator", "call_id", in.ID)
			return nil, nil
		})
}

func withLegs(c Call) Call {
	if c.Legs == nil {
		c.Legs = []CallLeg{}
	}
	if c.Codecs == nil {
		c.Codecs = []string{}
	}
	return c
}
