package web

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
)

type registrationListOutput struct {
	Body Page[Registration]
}

func (s *Server) registerRegistrations(api huma.API) {
	huma.Register(api, op("list-registrations", http.MethodGet, "/api/v1/registrations", tagRegs, "List live registrations", http.StatusUnprocessableEntity),
		func(ctx context.Context, in *PageParams) (*registrationListOutput, error) {
			after, err := in.after()
			if err != nil {
				return nil, err
			}
			regs, err := s.svc.Registrations(ctx)
			if err != nil {
				return nil, s.problem(ctx, "registrations", err)
			}
			now := s.now()
			for i := range regs {
				regs[i].ExpiresIn = max(0, int64(regs[i].ExpiresAt.Time().Sub(now).Seconds()))
			}
			return &registrationListOutput{Body: pageOf(regs, func(r Registration) string { return r.ID }, in.Limit, after)}, nil
		})

	del := op("delete-registration", http.MethodDelete, "/api/v1/registrations/{id}", tagRegs, "Remove a registration", http.StatusNotFound)
	del.DefaultStatus = http.StatusNoContent
	del.Description = "Removes one binding, as if the device had unregistered. IDs contain '|': URL-escape them (%7C). The device registers again at its next refresh unless its account is gone."
	huma.Register(api, del,
		func(ctx context.Context, in *struct {
			ID string `path:"id" doc:"Registration ID, URL-escaped."`
		}) (*struct{}, error) {
			if err := s.svc.RemoveRegistration(ctx, in.ID); err != nil {
				return nil, s.problem(ctx, "registration "+quote(in.ID), err)
			}
			return nil, nil
		})
}
