package web

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/switchboard/switchboard/internal/jsontime"
)

type statusOutput struct {
	Body Status
}

type trunkListOutput struct {
	Body List[Trunk]
}

func (s *Server) registerServer(api huma.API) {
	huma.Register(api, op("get-status", http.MethodGet, "/api/v1/status", tagServer, "Server status and counts"),
		func(ctx context.Context, _ *struct{}) (*statusOutput, error) {
			st, err := s.status(ctx)
			if err != nil {
				return nil, s.problem(ctx, "status", err)
			}
			return &statusOutput{Body: st}, nil
		})

	trunks := op("list-trunks", http.MethodGet, "/api/v1/trunks", tagTrunks, "List trunks")
	trunks.Description = "The external SIP providers (trunks) in routing order, with their registration and health state."
	huma.Register(api, trunks,
		func(ctx context.Context, _ *struct{}) (*trunkListOutput, error) {
			out := &trunkListOutput{Body: List[Trunk]{Items: []Trunk{}}}
			if s.trunks == nil {
				return out, nil
			}
			ts, err := s.trunks.Trunks(ctx)
			if err != nil {
				return nil, s.problem(ctx, "trunks", err)
			}
			if ts != nil {
				out.Body.Items = ts
			}
			return out, nil
		})
}

func (s *Server) status(ctx context.Context) (Status, error) {
	users, err := s.svc.Users(ctx)
	if err != nil {
		return Status{}, err
	}
	regs, err := s.svc.Registrations(ctx)
	if err != nil {
		return Status{}, err
	}
	calls, err := s.svc.Calls(ctx)
	if err != nil {
		return Status{}, err
	}
	return Status{
		Version:       s.cfg.Version,
		StartedAt:     jsontime.Millis(s.started),
		UptimeSeconds: int64(s.now().Sub(s.started).Seconds()),
		Ready:         s.ready.Load(),
		Users:         len(users),
		Registrations: len(regs),
		ActiveCalls:   len(calls),
	}, nil
}
